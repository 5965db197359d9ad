# Read by gunicorn from the directory it starts in (the Dockerfile's and compose's).
# Access logs leave out the signed tokens in URLs (paperboy/accesslog.py).
logger_class = "paperboy.accesslog.AccessLogger"
