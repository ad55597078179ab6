# The production image: one image, run as `web` or `worker` (see compose.yaml). Not exercised by CI here.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY glow ./glow
COPY attempts ./attempts
COPY tests_app ./tests_app
COPY system ./system
COPY templates ./templates
COPY manage.py Procfile ./
RUN pip install --no-cache-dir . && python manage.py collectstatic --noinput -v0
EXPOSE 8000
CMD ["uvicorn", "glow.asgi:application", "--host", "0.0.0.0", "--port", "8000"]
