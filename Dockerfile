# One image for every vrec service (worker, beat, migrate, simulator).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY worker ./worker
COPY tasks ./tasks
COPY models ./models
COPY migrations ./migrations
# The vips extra: exact image fits through libvips, 2x Pillow (README, Images).
RUN pip install --no-cache-dir ".[vips]" && useradd --system --uid 10001 vrec
USER vrec
ENTRYPOINT ["vrec"]
