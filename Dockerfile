# campaign-guard: one image for the web receiver and the worker (the command picks the role).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN useradd --create-home --uid 10001 guard
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY rules ./rules
RUN pip install . && mkdir -p /data && chown guard /data
USER guard
ENV BOT_RULES_DIR=/app/rules BOT_STATE_URL=sqlite:////data/state.db BOT_HTTP_HOST=0.0.0.0 BOT_HTTP_PORT=8080
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status == 200 else 1)"
ENTRYPOINT ["campaign-guard"]
CMD ["run"]
