"""hybridrl.config"""
