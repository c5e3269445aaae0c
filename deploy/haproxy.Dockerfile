# HAProxy from Debian's package, with deploy/haproxy.cfg (made by bot/cluster/haproxy.py).
#   docker build -f deploy/haproxy.Dockerfile -t digitbot-haproxy deploy
# The TLS certificate and its key, one PEM, are mounted at /etc/haproxy/certs/bot.pem.
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends haproxy \
    && rm -rf /var/lib/apt/lists/*
COPY haproxy.cfg /etc/haproxy/haproxy.cfg
EXPOSE 443
# -db: in the foreground, logs on stdout (the container's log).
CMD ["haproxy", "-db", "-f", "/etc/haproxy/haproxy.cfg"]
