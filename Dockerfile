# Caddy with the kaltura_ks plugin, built from this checkout:
#   docker build -t caddy-kaltura-ks .
# The Caddy version is that of go.mod (the builder image sets CADDY_VERSION).
# Not exercised by CI (no Docker engine there); .ci/run runs this RUN's
# xcaddy command against the checkout instead.
FROM caddy:2.11.9-builder AS builder
COPY . /src
# The module path is not published: as a private path with every VCS
# disallowed, a lookup of it fails locally as "not found" and xcaddy's
# replacement (/src) is used; it never reaches a module proxy.
ENV GOPRIVATE=github.com/caddy-kaltura-ks/caddy-kaltura-ks GOVCS=github.com/caddy-kaltura-ks/caddy-kaltura-ks:off
RUN xcaddy build --with github.com/caddy-kaltura-ks/caddy-kaltura-ks=/src

FROM caddy:2.11.9
COPY --from=builder /usr/bin/caddy /usr/bin/caddy
