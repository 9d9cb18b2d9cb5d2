# The builder image for one target and one recipe's system packages (production).
#
#   docker build -f workers/Dockerfile.builder \
#       --build-arg PYTHON_VERSION=3.13 --build-arg APK_PACKAGES="postgresql-dev" \
#       -t edelweiss-builder:cp313-<recipe tag> workers/
#
# workers/build-images builds one per recipe in config/recipes.toml, tagged with the
# recipe's tag, which a target's `builder = "edelweiss-builder:cp313-{recipe}"` selects.
ARG PYTHON_VERSION=3.13
FROM python:${PYTHON_VERSION}-alpine
ARG APK_PACKAGES=""
# build-base: gcc, musl-dev, make; patchelf for auditwheel; cargo (and rust) for maturin and
# setuptools-rust sdists, which build offline from the crates edelweiss vendors into
# /input/cargo-vendor; the recipe's -dev packages.
RUN apk add --no-cache build-base linux-headers patchelf cargo ${APK_PACKAGES}
# The PEP 517 tools the offline build step uses with --no-build-isolation, and auditwheel.
RUN python -m pip install --no-cache-dir \
        "pip==26.3" "setuptools==84.2.1" "wheel==0.48.0" "Cython==3.3.1" \
        "auditwheel==6.8.2" "packaging==26.4"
# Builds run as 65534 (nobody) with a read-only root; /scratch and /tmp are tmpfs mounts.
RUN mkdir -p /scratch /input /output /wheelhouse /edelweiss && chmod 1777 /scratch
USER 65534:65534
WORKDIR /scratch
