# The gateway's container image: `whatsapp-gateway serve` on port 5006 as a non-root user.
# The same image runs the worker (`whatsapp-gateway worker`) and migrations
# (`whatsapp-gateway db upgrade`); see compose.yaml and docs/deployment.md.
#
#   docker build -t whatsapp-gateway .
#   docker run --rm -p 5006:5006 --env-file variables.env whatsapp-gateway
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 gateway \
 && useradd --system --uid 10001 --gid gateway --no-create-home --shell /usr/sbin/nologin gateway \
 && install --directory --owner gateway --group gateway /var/lib/whatsapp-gateway

WORKDIR /opt/whatsapp-gateway
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN pip install '.[server,postgres]'

# The SQLite store (the default) lives in a volume; PostgreSQL needs only DATABASE_URL.
WORKDIR /var/lib/whatsapp-gateway
VOLUME /var/lib/whatsapp-gateway
ENV DATABASE_URL=sqlite:////var/lib/whatsapp-gateway/whatsapp_gateway.db
USER gateway

EXPOSE 5006
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5006/healthz', timeout=4)"]
CMD ["whatsapp-gateway", "serve", "--host", "0.0.0.0", "--port", "5006"]
