# The gateway image: `alana-gateway serve` by default; docker-compose.yml runs `worker` from it too.
# Installs the gateway and the three platform plugins as a third party would (no test extras, and
# no SecantusDB: in a container MONGODB_URL always points at a real MongoDB).

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY . .
RUN pip install . ./plugins/shopify ./plugins/woocommerce ./plugins/bigcommerce

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=8000
RUN useradd --system --uid 10001 --create-home --home-dir /home/gateway gateway
COPY --from=build /opt/venv /opt/venv
USER gateway
WORKDIR /home/gateway
EXPOSE 8000
CMD ["alana-gateway", "serve", "--host", "0.0.0.0", "--port", "8000"]
