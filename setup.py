"""Installs the ultralytics package: `pip install -e .` (add `[export]` for ONNX, `[track]` for the lap solver,
`[screen]` for screenshot sources, `[dev]` for tests)."""

from pathlib import Path

from setuptools import find_packages, setup

VERSION = next(
    line.split('"')[1]
    for line in (Path(__file__).parent / "ultralytics" / "__init__.py").read_text().splitlines()
    if line.startswith("__version__")
)

setup(
    name="ultralytics",
    version=VERSION,
    description="RT-DETR detectors, including RT-DETR-l with Focal Modulation, in an Ultralytics 8.3 layout",
    long_description=(Path(__file__).parent / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["ultralytics", "ultralytics.*"]),
    package_data={"ultralytics": ["cfg/*.yaml", "cfg/**/*.yaml", "assets/*"]},
    include_package_data=True,
    install_requires=[
        "torch>=1.8.0",
        "torchvision>=0.9.0",
        "numpy>=1.23.0",
        "opencv-python-headless>=4.6.0",
        "pyyaml>=5.3.1",
        "matplotlib>=3.3.0",
        "pillow>=7.1.2",
        "scipy>=1.4.1",
        "tqdm>=4.64.0",
        "psutil",
        "ultralytics-thop==2.0.13",  # later releases also count functional matmuls: 109.3 instead of 107.8 GFLOPs
    ],
    extras_require={
        "export": ["onnx>=1.12.0", "onnxruntime>=1.14.0", "onnxslim>=0.1.31", "openvino>=2024.0.0"],
        "track": ["lap>=0.5.12"],  # a faster assignment solver for the trackers; scipy's serves without it
        "screen": ["mss"],  # source=screen
        "logging": ["tensorboard>=2.13.0"],
        "dev": [
            "pytest>=7.0",
            "pycocotools>=2.0.6",
            "onnx>=1.12.0",
            "onnxruntime>=1.14.0",
            "onnxslim>=0.1.31",
            "mss",
            "openvino>=2024.0.0",
            "tensorboard>=2.13.0",
            "pandas>=1.1.4",
        ],
    },
    entry_points={"console_scripts": ["yolo = ultralytics.cfg:entrypoint", "ultralytics = ultralytics.cfg:entrypoint"]},
)
