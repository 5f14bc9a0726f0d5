from setuptools import find_packages, setup


def get_version():
    scope = {}
    with open('mmadamtl/version.py', encoding='utf-8') as f:
        exec(f.read(), scope)
    return scope['__version__']


setup(
    name='mmadamtl',
    version=get_version(),
    description='Efficient dense multi-task learning (AdaMTL, MTLoRA) as an '
    'OpenMMLab / MMSegmentation plugin',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('configs', 'tools', 'tests')),
    python_requires='>=3.8',
    install_requires=[
        'torch>=1.12',
        'mmcv>=2.0.0rc4,<2.2.0',
        'mmengine>=0.10,<1.0',
        'mmsegmentation>=1.2,<2.0',
        'numpy',
        'scipy',
        'pymoo>=0.6',
        'pyedgeeval>=0.2.8',
        'scikit-image',
        'Pillow',
        'rich',
        'onnx>=1.16',
        'onnxscript>=0.5',
        'onnxruntime>=1.18',
    ],
    # timm: the tests build its Swin to prove the checkpoint conversion;
    # the package reads timm's checkpoints without importing it.
    extras_require=dict(tests=['pytest', 'timm>=0.9']),
    license='Apache License 2.0',
    zip_safe=False,
)
