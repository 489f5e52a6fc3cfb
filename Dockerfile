# One image for every part of callbridge: the orchestrator (`callbridge serve`, the default),
# a handoff worker (`callbridge worker`) and the stand-in provider (`callbridge provider`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# Only what the package is built from: no virtualenv, caches or tests end up in the image.
COPY pyproject.toml README.md ./
COPY signaling ./signaling
COPY media ./media
COPY service ./service
# The stand-in provider runs from this image too, so it carries the `local` extra.
RUN pip install ".[local]"

RUN useradd --create-home --uid 10001 callbridge
USER callbridge

# Listening beyond loopback needs CALLBRIDGE_API_TOKENS: without them `serve` falls back to
# 127.0.0.1, where nothing outside the container can reach it.
ENV CALLBRIDGE_HOST=0.0.0.0 \
    CALLBRIDGE_LOG_FORMAT=json
EXPOSE 8080
CMD ["callbridge", "serve"]
