"""The demo's models: each is a function returning (name, model, data, fit kwargs)."""

import keras


def cnn(filters=(32, 64, 64), activation="relu", name="cnn"):
    """Conv2D/MaxPooling/Flatten/Dense on 32x32x3 images (five shape classes)."""
    layers = [keras.Input((32, 32, 3), name="image")]
    for i, f in enumerate(filters):
        layers.append(keras.layers.Conv2D(f, 3, padding="same", activation=activation, name="conv%d" % (i + 1)))
        if i < len(filters) - 1:
            layers.append(keras.layers.MaxPooling2D(name="pool%d" % (i + 1)))
    layers += [
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(64, activation=activation, name="dense1"),
        keras.layers.Dense(5, activation="softmax", name="predictions"),
    ]
    return keras.Sequential(layers, name=name)


def mlp_784_200_10(name="mlp_784_200_10"):
    """The classic 784-200-10 sigmoid network on 28x28 digits."""
    return keras.Sequential([
        keras.Input((784,), name="pixels"),
        keras.layers.Dense(200, activation="sigmoid", name="hidden"),
        keras.layers.Dense(10, activation="sigmoid", name="output"),
    ], name=name)


def tanh_mlp(depth=4, width=16, name="tanh_mlp"):
    """An L-layer MLP: tanh hidden layers and a sigmoid output (binary task)."""
    layers = [keras.Input((2,), name="point")]
    for i in range(depth):
        layers.append(keras.layers.Dense(width, activation="tanh", name="tanh%d" % (i + 1)))
    layers.append(keras.layers.Dense(1, activation="sigmoid", name="output"))
    return keras.Sequential(layers, name=name)


def dense_2d(name="dense_2d"):
    """Dense layers applied to a 50x50 input: every output is 2-D (50 x units)."""
    return keras.Sequential([
        keras.Input((50, 50), name="grid"),
        keras.layers.Dense(75, activation="relu", name="dense75"),
        keras.layers.Dense(30, activation="relu", name="dense30"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(2, activation="softmax", name="output"),
    ], name=name)
