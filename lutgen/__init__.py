"""lutgen"""
