"""Pure PyTorch + NumPy forecasters: LSTM, GRU, Elman RNN and echo state networks.

This package imports only torch, numpy, safetensors and the standard library, so a
trained model can run on a bare GPU box. MLflow, pandas and FastAPI live above it.
"""
