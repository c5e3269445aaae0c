# digitbot: the Telegram bot with the shipped model, as a small non-root container.
#   docker build -t digitbot .
#   docker run -d --name digitbot --env-file .env \
#       -v digitbot-models:/app/models -v digitbot-data:/app/data digitbot
# The token and every other setting come from --env-file at run time; nothing secret is baked in.
# The feedback store (answers, corrections) is /app/data/feedback.sqlite3: /app/data belongs to
# the non-root user and is a volume, so it survives a new container; a named volume starts with
# that ownership (a bind-mounted folder must be writable by uid 10001).
# /retrain writes new versions into /app/models (a volume keeps them across restarts) and needs
# MNIST: mount it and set MNIST_PATH (e.g. -v ./mnist.npz:/data/mnist.npz:ro
# -e MNIST_PATH=/data/mnist.npz), otherwise Keras downloads it on the first /retrain.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    MODEL_DIR=/app/models \
    DATA_DIR=/app/data \
    DATABASE_URL=sqlite:////app/data/feedback.sqlite3 \
    MPLCONFIGDIR=/tmp/matplotlib

# The fonts core.synthetic prints digits and letters with: `/retrain full` trains on them too.
RUN apt-get update && apt-get install -y --no-install-recommends \
        fonts-dejavu-core fonts-liberation fonts-dkg-handwriting \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin digitbot
WORKDIR /app

# Dependencies and code first (tensorflow-cpu comes with the project on x86_64), the model last,
# so that a new model does not reinstall anything.
COPY pyproject.toml constraints.txt README.md* ./
# .dockerignore leaves out the bench tools (core/bench, bot/tools) and the offline sandbox
# (bot/sandbox): `digitbot bench` and `digitbot sandbox` say so.
COPY core ./core
COPY bot ./bot
RUN pip install -c constraints.txt . && rm -rf /root/.cache

COPY --chown=digitbot:digitbot models ./models
# The feedback store, its generated salt and the heartbeat file: owned by the non-root user, and
# a volume like the models (a named volume starts with this owner).
RUN install -d -o digitbot -g digitbot /app/data
VOLUME ["/app/models", "/app/data"]
USER digitbot

# Healthy while the bot's event loop keeps touching its heartbeat file (every 10 s); a crashed
# process ends the container anyway, a stuck one is caught here.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["digitbot", "health"]

CMD ["digitbot", "run"]
