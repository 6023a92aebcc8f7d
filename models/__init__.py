"""Pure PyTorch + NumPy forecasters: LSTM, GRU, Elman RNN, echo state networks and the
baselines (naive, seasonal naive, local-level Kalman), all behind one Forecaster contract.

This package imports only torch, numpy, safetensors and the standard library, so a
trained model can run on a bare GPU box. MLflow, pandas and FastAPI live above it.
"""
