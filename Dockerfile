# syntax=docker/dockerfile:1
# MazeVault Certificates — one image for web (gunicorn), worker and beat (compose.yaml picks the command).
# Docker does not run on the machines this project is developed on: this file is kept correct by
# reading (README.md, docs/deployment.md). Build: docker build -t mazevault-certificates .

ARG PYTHON_VERSION=3.11

# --- build: a venv with the runtime dependencies only ------------------------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
# gcc and the headers cover any dependency without a wheel for this platform.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml ./
# The app runs from its source tree (/app), so only the dependencies are installed here.
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > requirements.txt \
 && pip install -r requirements.txt

# --- runtime ---------------------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=mazevault.settings \
    MAZEVAULT_ENV=production \
    MAZEVAULT_DATA_DIR=/var/lib/mazevault \
    STATIC_ROOT=/app/staticfiles \
    PORT=8000
# openssl: operators verify chains and inspect keys from inside the container.
RUN apt-get update \
 && apt-get install -y --no-install-recommends openssl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 mazevault \
 && useradd --system --uid 10001 --gid mazevault --home-dir /app --shell /usr/sbin/nologin mazevault \
 && mkdir -p /var/lib/mazevault \
 && chown mazevault:mazevault /var/lib/mazevault
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=root:root . /app
# Static files are collected at build time with throw-away secrets in a throw-away data dir, so no
# secret or key is baked into the image. The code stays root-owned: the app user cannot modify it.
RUN MAZEVAULT_DATA_DIR=/tmp/collectstatic \
    DJANGO_SECRET_KEY=collectstatic-only \
    MAZEVAULT_KEK="$(python -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())')" \
    python manage.py collectstatic --noinput --verbosity 0 \
 && rm -rf /tmp/collectstatic \
 && python -m compileall -q /app
USER mazevault:mazevault
VOLUME ["/var/lib/mazevault"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c 'import os, urllib.request; urllib.request.urlopen("http://127.0.0.1:%s/api/v1/health" % os.environ.get("PORT", "8000"), timeout=4)' || exit 1
# gunicorn binds 0.0.0.0:$PORT (its PORT convention); WEB_CONCURRENCY sets the worker processes.
CMD ["gunicorn", "--config", "mazevault/gunicorn.conf.py", "mazevault.wsgi:application"]
