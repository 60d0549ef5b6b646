"""hybridrl.algo"""
