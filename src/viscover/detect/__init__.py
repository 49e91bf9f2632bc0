"""Detection stage: detectors by name (SSD, YOLOX, NanoDet, Faster R-CNN), boxes and the paper's
dominant-object rule, detection datasets (COCO, VOC, YOLO) and detector training."""

from viscover.detect.boxes import Detection, box_iou, check_box, dominant_object, pad_box
from viscover.detect.datasets import AnnotatedImage, BadDatasetError, DetectionDataset, load_dataset
from viscover.detect.draw import draw_detections
from viscover.detect.registry import Detector, DetectorSpec, create_detector, list_detectors, register_detector

__all__ = [
    "AnnotatedImage",
    "BadDatasetError",
    "Detection",
    "DetectionDataset",
    "Detector",
    "DetectorSpec",
    "box_iou",
    "check_box",
    "create_detector",
    "dominant_object",
    "draw_detections",
    "list_detectors",
    "load_dataset",
    "pad_box",
    "register_detector",
]
