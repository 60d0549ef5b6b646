"""hybridrl.models"""
