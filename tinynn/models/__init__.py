"""The architecture zoo, one file per family.

Image classifiers take N×C×H×W batches; the ImageNet-sized ones (``alexnet``, ``vgg16``,
``googlenet``, ``resnet18``/``34``, ``densenet121``, ``mobilenet_v2``) match torchvision's
``state_dict`` keys, shapes and parameter counts. Every one of them also accepts
``in_channels`` and ``small_input=True``, a variant for 28×28 / 32×32 images (stride-1 3×3
stem, fewer or rounded-up pools; see each module's docstring), e.g.
``resnet18(num_classes=10, in_channels=1, small_input=True)``; ``resnet18_cifar`` is
``resnet18(small_input=True)``. Loading torchvision weights needs ``small_input=False``.
"""
from ._init import count_parameters
from .alexnet import AlexNet, alexnet
from .dcgan import DCGANDiscriminator, DCGANGenerator, train_dcgan
from .densenet import DenseNet, densenet121, densenet_cifar
from .googlenet import GoogLeNet, GoogLeNetOutputs, googlenet, googlenet_loss
from .mlp import LeNet5, lenet5, mlp, small_cnn
from .mobilenet import InvertedResidual, MobileNetV2, mobilenet_v2
from .patterns import DenseBlock, EarlyExitClassifier, Ensemble, MultiTaskModel, Residual
from .positional import (LearnedPositionalEmbedding, RotaryEmbedding, SinusoidalPositionalEncoding, alibi_bias,
                         alibi_slopes, sinusoidal_table)
from .resnet import (BasicBlock, Bottleneck, ResNet, resnet18, resnet18_cifar, resnet34, resnet34_cifar,
                     resnet50)
from .rnn import GRUClassifier, LSTMClassifier, RNNClassifier
from .siamese import SiameseNetwork, contrastive_loss, triplet_loss
from .transformer import (MultiheadAttention, RMSNorm, Seq2SeqTransformer, TransformerClassifier,
                          TransformerDecoder, TransformerDecoderLayer, TransformerEncoder, TransformerEncoderLayer,
                          generate_square_subsequent_mask)
from .unet import UNet
from .vae import VAE, vae_loss
from .vgg import VGG, vgg11, vgg16, vgg16_bn, vgg19

__all__ = [
    "count_parameters",
    "mlp", "lenet5", "LeNet5", "small_cnn", "alexnet", "AlexNet", "vgg11", "vgg16", "vgg16_bn", "vgg19", "VGG",
    "googlenet", "GoogLeNet", "GoogLeNetOutputs", "googlenet_loss",
    "resnet18", "resnet34", "resnet50", "resnet18_cifar", "resnet34_cifar", "ResNet", "BasicBlock", "Bottleneck",
    "densenet121", "densenet_cifar", "DenseNet", "mobilenet_v2", "MobileNetV2", "InvertedResidual",
    "RNNClassifier", "LSTMClassifier", "GRUClassifier",
    "TransformerClassifier", "Seq2SeqTransformer", "MultiheadAttention", "TransformerEncoderLayer",
    "TransformerDecoderLayer", "TransformerEncoder", "TransformerDecoder", "RMSNorm",
    "generate_square_subsequent_mask",
    "SinusoidalPositionalEncoding", "LearnedPositionalEmbedding", "RotaryEmbedding", "alibi_bias", "alibi_slopes",
    "sinusoidal_table",
    "DCGANGenerator", "DCGANDiscriminator", "train_dcgan", "VAE", "vae_loss", "UNet",
    "SiameseNetwork", "contrastive_loss", "triplet_loss",
    "Residual", "DenseBlock", "MultiTaskModel", "Ensemble", "EarlyExitClassifier",
]
