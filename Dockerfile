# Builds the single `herald` binary into a small image.
#
#   docker build --build-arg VERSION=$(git describe --always --dirty) -t herald .
FROM golang:1.26 AS build
ARG VERSION=dev
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /herald ./cmd/herald
# The data directory, owned by the image's nonroot user (65532): herald serve
# keeps its embedded JetStream store and generated keys there.
RUN mkdir -p /out/var/lib/herald

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /herald /herald
COPY --from=build --chown=65532:65532 /out/var/lib/herald /var/lib/herald
WORKDIR /var/lib/herald
VOLUME /var/lib/herald
EXPOSE 8000 9090
ENTRYPOINT ["/herald"]
CMD ["serve"]
