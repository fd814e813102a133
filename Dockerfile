# Tidings as a service: `tidings run` (see the README, "As a service").
#
#   docker build -t tidings .
#   docker run -d --name tidings \
#     -v "$PWD/tidings.toml:/etc/tidings/tidings.toml:ro" \
#     -v tidings-data:/var/lib/tidings \
#     --env-file secrets.env \
#     tidings                       # the same image runs any command: ... tidings ingest -
#
# The config is read from /etc/tidings/tidings.toml (mount yours there, with its templates
# directory beside it); an SQLite store belongs on the volume:
#   [store] url = "sqlite:////var/lib/tidings/tidings.db"
# Secrets (SMTP password, Notify key, webhook secrets) come from the environment variables the
# config names (--env-file), never from the image.

FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# A wheel of the base package only: no dev or demo extras in the image.
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.12-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TIDINGS_CONFIG=/etc/tidings/tidings.toml
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/tidings \
        --shell /usr/sbin/nologin tidings \
    && mkdir -p /etc/tidings /var/lib/tidings \
    && chown tidings:tidings /var/lib/tidings
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER tidings
WORKDIR /var/lib/tidings
VOLUME ["/var/lib/tidings"]
# `tidings serve`: the service, the API and the console. Inside a container it must listen on
# every interface (`[serve] host = "0.0.0.0"` in the config, or the --host below).
EXPOSE 8080
# `docker stop` sends SIGTERM: requests and sends under way finish, then it exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["tidings"]
CMD ["serve", "--host", "0.0.0.0"]
