# One image for the user-code gRPC server, the webserver, the daemon and run workers.
# Installs exactly as the Makefile does (youtokentome needs Cython 2 and no build isolation).
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends build-essential make && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/mm_pipeline
COPY pyproject.toml README.md Makefile workspace.yaml ./
COPY mm_pipeline ./mm_pipeline
RUN make install PYTHON=python3.11 && rm -rf /root/.cache/pip
ENV PATH=/opt/mm_pipeline/.venv/bin:$PATH \
    DAGSTER_HOME=/opt/dagster/home \
    MM_DATA_DIR=/opt/mm_pipeline/data \
    WANDB_MODE=offline
COPY deploy/dagster.yaml /opt/dagster/home/dagster.yaml
EXPOSE 4000 3000
