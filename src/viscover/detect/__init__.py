"""Detection stage: detectors by name (SSD, YOLOX, NanoDet, Faster R-CNN), detections and the paper's
dominant-object rule, class-agnostic sliding windows, detection datasets (COCO, VOC, YOLO) and detector training."""

from viscover.detect.datasets import AnnotatedImage, BadDatasetError, DetectionDataset, load_dataset
from viscover.detect.detections import Detection, box_iou, dominant_object
from viscover.detect.draw import draw_detections
from viscover.detect.registry import DETECTORS, Detector, DetectorSpec, create_detector, list_detectors
from viscover.detect.windows import REGION, windows

__all__ = [
    "DETECTORS",
    "REGION",
    "AnnotatedImage",
    "BadDatasetError",
    "Detection",
    "DetectionDataset",
    "Detector",
    "DetectorSpec",
    "box_iou",
    "create_detector",
    "dominant_object",
    "draw_detections",
    "list_detectors",
    "load_dataset",
    "windows",
]
