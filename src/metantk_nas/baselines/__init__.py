"""The paper's Table 1 baselines: Conv4 and ResNet-12 trained by MAML, ANIL, MetaOptNet-SVM and RFS."""
