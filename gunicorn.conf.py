# Read by gunicorn from the directory it starts in (the Dockerfile's and compose's).
# Access logs leave out the signed tokens in URLs (digest/accesslog.py).
logger_class = "digest.accesslog.AccessLogger"
