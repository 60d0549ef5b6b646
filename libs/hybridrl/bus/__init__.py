"""hybridrl.bus"""
