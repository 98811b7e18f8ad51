# fieldcloud: one instance per container, settings from the environment
# (docs/configuration.md). Build: `docker build -t fieldcloud .`
#
#   docker run -e DATABASE_URL=… -e REDIS_URL=… -e FIELDCLOUD_ADMIN_TOKEN=… \
#              -p 8000:8000 fieldcloud                 # serve on $PORT (8000)
#   docker run -e DATABASE_URL=… fieldcloud fieldcloud migrate   # once per release
#
# Stop it with SIGTERM (docker stop, Kubernetes): the shutdown is graceful
# and exits 0; allow 15 s before SIGKILL (docs/operations.md).

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY geo ./geo
COPY dispatch ./dispatch
COPY mobile_api ./mobile_api
# Every dependency ships manylinux wheels for CPython 3.11: no compiler needed.
RUN python -m venv /opt/fieldcloud && /opt/fieldcloud/bin/pip install .

FROM python:3.11-slim
COPY --from=build /opt/fieldcloud /opt/fieldcloud
RUN useradd --system --uid 10001 --user-group --no-create-home \
        --shell /usr/sbin/nologin fieldcloud
ENV PATH=/opt/fieldcloud/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOST=0.0.0.0 \
    PORT=8000
USER fieldcloud
EXPOSE 8000
STOPSIGNAL SIGTERM
# Liveness only: /readyz (PostgreSQL and Redis answer) is for the load balancer.
# The slim image has no curl; Python's standard library does the request, and
# a refused connection or a status other than 2xx exits 1.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=2)"]
# `serve` reads HOST and PORT itself (a platform such as Heroku sets PORT).
CMD ["fieldcloud", "serve"]
