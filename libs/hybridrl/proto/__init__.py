"""hybridrl.proto"""
