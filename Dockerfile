# One image for the kubeagora operator and the scheduler extender:
#   docker build -t kubeagora:dev .
#   kubeagora operator run ...      (manifests/operator.yaml)
#   kubeagora scheduler-extender ...  (manifests/scheduler-extender.yaml)
# Only the 'operator' and 'cluster' extras are installed: the 'learn' extra (torch) is for training
# offline and would make the image gigabytes larger for nothing the cluster runs.
#
# Supply chain: the base image is pinned by digest (python:3.11-slim's multi-platform index; refresh it
# with `docker buildx imagetools inspect python:3.11-slim` or `crane digest python:3.11-slim`), and every
# Python package comes from requirements/image.lock, pinned with its hashes (`make lock` regenerates it
# from pyproject.toml; pip refuses anything unhashed). kubeagora itself is built from this context with
# the locked hatchling, without build isolation, so no build dependency is fetched unhashed either.
FROM python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7

# The root filesystem is read-only in the manifests; /tmp is an emptyDir there, so HOME and caches go there.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib

# The operator makes its admission webhook's self-signed certificate with the openssl tool.
RUN apt-get update \
 && apt-get install -y --no-install-recommends openssl \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /build
COPY requirements/image.lock ./requirements/
RUN pip install --no-cache-dir --require-hashes --only-binary :all: -r requirements/image.lock
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir --no-deps --no-build-isolation '.[operator,cluster]' \
 && rm -rf /build

# A numeric user, so the kubelet can verify runAsNonRoot without looking the name up.
RUN useradd --system --uid 65532 --user-group --no-create-home --shell /usr/sbin/nologin kubeagora
USER 65532:65532
WORKDIR /tmp

ENTRYPOINT ["kubeagora"]
CMD ["--help"]
