"""The data layer: typed records, readers (ODVG, COCO, label maps, inference inputs), image
sources (folder, images.tar.gz, fsspec URLs), captions and token maps, transforms, torch
datasets and batching, the synthetic dataset and the dataset tools."""
