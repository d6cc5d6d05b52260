# One image for every vrec service (worker, beat, migrate, simulator).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY worker ./worker
COPY tasks ./tasks
COPY models ./models
COPY migrations ./migrations
RUN pip install --no-cache-dir . && useradd --system --uid 10001 vrec
USER vrec
ENTRYPOINT ["vrec"]
