FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DATA_DIR=/data
WORKDIR /app
COPY pyproject.toml README.md ./
COPY exporter ./exporter
COPY datasource ./datasource
RUN pip install --no-cache-dir . && useradd --system --home /data --create-home mailcow-grafana
USER mailcow-grafana
EXPOSE 8088
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8088/api/health').status != 200)"
CMD ["mailcow-grafana", "run", "--bind", "0.0.0.0:8088"]
