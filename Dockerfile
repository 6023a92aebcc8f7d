# syntax=docker/dockerfile:1
#
# One image for every process of the production topology (docs/deployment.md): the API
# (`forecast serve`, the default command), the scheduler (`forecast schedule`), the one-shot
# trainer (`forecast train`) and the MLflow tracking server (`mlflow server`, with the
# entrypoint overridden in docker-compose.yml).
#
# CPU build (the default):
#   docker build -t rnn-forecast .
# CUDA build for a GPU training host: the CUDA torch wheel carries its own CUDA runtime, so the
# slim base is enough; the host needs only the NVIDIA driver and the container toolkit:
#   docker build -t rnn-forecast:cuda --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 .
# BASE_IMAGE may name any Debian-like image with Python 3.11 as `python` and `pip` (for example
# a CUDA base with cuDNN preinstalled); TORCH_SPEC overrides the torch requirement taken from
# requirements.lock (for example "torch==2.13.0+cu128").

ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG TORCH_SPEC=

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    FORECAST_DATA_DIR=/app/data \
    MPLBACKEND=Agg

WORKDIR /app

# Dependencies first, from the two files that pin them, so a code change reuses these layers.
COPY pyproject.toml requirements.lock ./

# torch first and alone, at the version pinned in requirements.lock, from the PyTorch index
# (CPU wheels by default; it also hosts torch's own dependencies). The next step then finds
# torch satisfied (2.13.0+cpu satisfies ==2.13.0), never pulls the multi-GB CUDA build from
# PyPI, and moves torch's dependencies to the versions in the lock.
RUN set -eu; \
    spec="${TORCH_SPEC:-$(grep -E '^torch==' requirements.lock)}"; \
    if [ -z "$spec" ]; then echo "requirements.lock has no torch== pin; add one" >&2; exit 1; fi; \
    pip install --index-url "$TORCH_INDEX" "$spec"

# Every runtime dependency of pyproject.toml, pinned by the lock. The list is read from
# pyproject.toml rather than installing "." here: the package cannot be built before its code
# (and README.md) are copied, and the dev extras (pytest, ruff, mypy) stay out of the image.
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/runtime-requirements.txt \
    && pip install -c requirements.lock -r /tmp/runtime-requirements.txt \
    && rm /tmp/runtime-requirements.txt

# The code, the experiment files and the bundled datasets; then the package itself (editable,
# so `forecast` and the modules run from /app and data_dir() finds /app/data either way).
COPY README.md ./
COPY models ./models
COPY training ./training
COPY service ./service
COPY configs ./configs
COPY data ./data
RUN pip install --no-deps -e . \
    && forecast --help > /dev/null

# Non-root user; /mlartifacts is owned by it so a fresh named volume mounted there (the MLflow
# server's artifact store in docker-compose.yml) is writable.
RUN useradd --create-home --uid 10001 --user-group forecast \
    && mkdir -p /mlartifacts \
    && chown forecast:forecast /mlartifacts
USER forecast

EXPOSE 8000

# Liveness of `forecast serve` on its default container port; slim images have no curl, so
# Python's urllib does the request (a non-2xx answer or a refused connection exits non-zero).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/v1/health', timeout=4)"]

ENTRYPOINT ["forecast"]
CMD ["serve", "--host", "0.0.0.0"]
