"""The Bot API transport: the HTTP client, retries, the update queue and the webhook server."""
