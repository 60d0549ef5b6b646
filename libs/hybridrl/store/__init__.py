"""hybridrl.store"""
