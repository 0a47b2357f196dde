"""The proxy validity study: does a training-free proxy rank architectures as their trained accuracy does?"""
