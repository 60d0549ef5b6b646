"""hybridrl.rewards"""
