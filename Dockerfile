# Image of the CyanPrint executor. The same image runs the service
# (`cyanprint-executor serve`, the default) and the merger
# (`cyanprint-executor merger`).
#
# Build it with scripts/build-image.sh, which first puts every wheel the
# image needs into build/wheels on the host, so the build itself needs no
# network.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/cyanprint/bin:$PATH

# Dependencies go in their own layer, ahead of the project's wheel, so a code
# change reuses the cached layer instead of reinstalling every dependency.
COPY build/wheels/requirements.txt build/wheels/*.whl /tmp/wheels/
RUN python3 -m venv /opt/cyanprint \
    && /opt/cyanprint/bin/pip install --no-index --no-cache-dir \
        --find-links /tmp/wheels --requirement /tmp/wheels/requirements.txt \
    && rm -rf /tmp/wheels

COPY build/wheels/project/*.whl /tmp/project/
RUN /opt/cyanprint/bin/pip install --no-index --no-cache-dir --no-deps /tmp/project/*.whl \
    && /opt/cyanprint/bin/pip check \
    && rm -rf /tmp/project

EXPOSE 9000
CMD ["cyanprint-executor", "serve"]
