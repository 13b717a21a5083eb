"""Rigid-body scenes simulated by MuJoCo (the benchmark of Brehmer et al., "Does
equivariance matter at scale?", rebuilt with our own choices).

A scene holds 3–6 free rigid bodies (boxes, capsules, ellipsoids) of random size and
mass, a floor plane and gravity. Bodies start from random poses and velocities above
the floor, fall, hit the floor and each other. Contacts use elliptic friction cones
(``<option cone="elliptic"/>``): MuJoCo's default pyramidal cones are not invariant
under rotations about the contact normal, elliptic ones are, so the simulation is
E(3)-equivariant to rounding once the floor and gravity are rotated with the scene.

Each body carries 4 non-coplanar keypoints rigidly attached to it (a tetrahedron
inscribed in its bounding box). A sample is

- input: the keypoints at ``t − Δ`` and ``t``, the gravity vector, and the floor as a
  point and a unit normal;
- target: the keypoints at ``t + Δ``;

with ``t`` drawn uniformly in ``[t_min, t_max]`` seconds after the start. Given gravity
and floor, the map input → target is exactly E(3)-equivariant, reflections included
(mass, shape type and the body index of each keypoint are invariant features):
``tests/test_rigid.py`` simulates scenes and their rotated, translated and reflected
copies and finds them equal to rounding (≤ 1e-12 after 0.4 s with contacts).

**Orientation (default).** With ``RigidSettings.random_motion=True`` (the default) each
scene is moved by a Haar-random rotation and a Gaussian translation
(``translation_std`` metres per axis) before it is simulated: floor normal, floor point,
gravity, body poses and velocities all move together, so the dataset covers all
orientations and its distribution is E(3)-invariant. With ``random_motion=False`` every
scene has its floor at ``z = 0`` with normal ``+z`` and gravity ``(0, 0, −9.81)``. The
random motion is a proper rotation: reflected scenes (:meth:`Scene.moved` with a
det −1 matrix, mirrored keypoint tetrahedra) are simulated correctly but not sampled.

Conventions: positions are rows ``[..., 3]`` in metres; a rotation ``R`` acts as
``x @ R.T``; quaternions are MuJoCo's ``(w, x, y, z)``. A free joint's linear velocity is
in the world frame, its angular velocity in the body frame; :class:`Scene` stores both
in the world frame and converts when the state is set.

MuJoCo (``mujoco-core`` on PyPI) is an optional extra imported lazily:
``pip install symtrain[physics]``. Datasets are cached as ``.pt`` files keyed by their
settings under ``cache_dir`` (default ``$SYMTRAIN_CACHE`` or ``~/.cache/symtrain``), as
for the n-body data.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from .._optional import import_optional
from ..actions.registry import create_action
from ..symmetry import Symmetry
from .nbody import default_cache_dir
from .registry import register_dataset
from .task import Task, TensorData, mse_metrics

MAX_BODIES = 6
KEYPOINTS_PER_BODY = 4
MAX_KEYPOINTS = MAX_BODIES * KEYPOINTS_PER_BODY
SHAPES = ("box", "capsule", "ellipsoid")
DATA_VERSION = 1  # part of the cache key: raise it when a change of this file changes the samples

# Tetrahedron vertices (non-coplanar), scaled by a body's half extents / sqrt(3):
# on the surface of an ellipsoid, inside a box.
_TETRAHEDRON = np.array([[1.0, 1.0, 1.0], [1.0, -1.0, -1.0], [-1.0, 1.0, -1.0], [-1.0, -1.0, 1.0]]) / np.sqrt(3.0)


def import_mujoco() -> ModuleType:
    """The ``mujoco`` module, or an ``ImportError`` saying how to install it."""
    return import_optional("mujoco", "The rigid-body data", "physics", "  (installs mujoco-core)")


@dataclass(frozen=True)
class RigidSettings:
    """Scene and sampling settings (lengths in m, masses in kg, times in s)."""

    min_bodies: int = 3
    max_bodies: int = MAX_BODIES
    half_size: tuple[float, float] = (0.08, 0.3)   # uniform range of each half extent
    mass: tuple[float, float] = (0.3, 3.0)         # log-uniform range
    spawn_radius: float = 0.5                      # body centres: |xy| within this radius
    spawn_height: tuple[float, float] = (0.4, 1.6)  # centre height above the floor
    speed: float = 1.0                             # linear velocity: N(0, speed²) per axis
    spin: float = 3.0                              # angular velocity: N(0, spin²) rad/s per axis
    gravity: float = 9.81
    friction: float = 0.6
    cone: str = "elliptic"                         # friction cone; "pyramidal" is not isotropic
    timestep: float = 0.002
    delta_steps: int = 25                          # Δ = delta_steps · timestep (50 ms)
    t_min: float = 0.05                            # t ~ U(t_min, t_max) after the start
    t_max: float = 1.5
    random_motion: bool = True                     # random global rigid motion per scene
    translation_std: float = 1.0

    @property
    def delta(self) -> float:
        """Δ in seconds."""
        return self.delta_steps * self.timestep


@dataclass(frozen=True)
class Scene:
    """One scene's initial state (``B`` bodies), everything in the world frame.

    ``shape`` ``[B]`` indices into :data:`SHAPES`; ``half_extent`` ``[B, 3]`` (box half
    sizes; capsule ``(r, r, r + half length)``; ellipsoid radii); ``mass`` ``[B]``;
    ``pos`` ``[B, 3]``; ``rot`` ``[B, 3, 3]`` body-to-world rotations; ``vel``, ``omega``
    ``[B, 3]`` linear and angular velocity; ``gravity``, ``floor_point``,
    ``floor_normal`` ``[3]``; ``mirrored`` ``[B]`` bool (None: none), True for a body
    whose keypoints are the mirror image (``z ↦ −z`` in its frame) of the usual
    tetrahedron, as after a reflection of the scene (MuJoCo frames must be proper
    rotations, and every shape here is symmetric under ``z ↦ −z``).
    """

    shape: np.ndarray
    half_extent: np.ndarray
    mass: np.ndarray
    pos: np.ndarray
    rot: np.ndarray
    vel: np.ndarray
    omega: np.ndarray
    gravity: np.ndarray
    floor_point: np.ndarray
    floor_normal: np.ndarray
    mirrored: np.ndarray | None = None

    @property
    def num_bodies(self) -> int:
        return len(self.shape)

    def local_keypoints(self) -> np.ndarray:
        """Keypoints in each body's frame, ``[B, 4, 3]``."""
        local = _TETRAHEDRON[None] * self.half_extent[:, None, :]
        if self.mirrored is not None:
            local[self.mirrored, :, 2] *= -1
        return local

    def keypoints(self) -> np.ndarray:
        """Initial keypoints in the world frame, ``[B·4, 3]``."""
        world = np.einsum("bkj,bij->bki", self.local_keypoints(), self.rot) + self.pos[:, None]
        return world.reshape(-1, 3)

    def moved(self, rot: np.ndarray, shift: np.ndarray) -> Scene:
        """The scene under the isometry ``x ↦ x @ rot.T + shift`` (floor, gravity, poses
        and velocities all move; shapes and masses do not). ``rot`` may be a reflection
        (det −1): each body frame ``R`` becomes the proper ``rot @ R @ diag(1, 1, −1)``
        with mirrored keypoints, and the angular velocity, a pseudovector, becomes
        ``−rot @ omega``."""
        sign = float(np.sign(np.linalg.det(rot)))
        flip = np.diag([1.0, 1.0, sign])
        mirrored = np.zeros(self.num_bodies, bool) if self.mirrored is None else self.mirrored
        return replace(self, pos=self.pos @ rot.T + shift, rot=rot[None] @ self.rot @ flip,
                       vel=self.vel @ rot.T, omega=sign * self.omega @ rot.T, gravity=rot @ self.gravity,
                       floor_point=rot @ self.floor_point + shift, floor_normal=rot @ self.floor_normal,
                       mirrored=mirrored ^ (sign < 0))


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A Haar-random rotation ``[3, 3]`` (QR of a Gaussian matrix, signs fixed, det +1)."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))[None]
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _spawn_positions(rng: np.random.Generator, radii: np.ndarray, settings: RigidSettings) -> np.ndarray:
    """Centres ``[B, 3]`` above ``z = 0`` whose bounding spheres (``radii`` ``[B]``) do not
    overlap (rejection sampling; the height range widens if a draw keeps failing)."""
    low, high = settings.spawn_height
    pos = np.zeros((len(radii), 3))
    for b, radius in enumerate(radii):
        for attempt in range(1000):
            angle, r = rng.uniform(0, 2 * np.pi), settings.spawn_radius * np.sqrt(rng.uniform())
            z = rng.uniform(max(low, radius), high + 0.01 * attempt)
            candidate = np.array([r * np.cos(angle), r * np.sin(angle), z])
            if all(np.linalg.norm(candidate - pos[c]) > radius + radii[c] for c in range(b)):
                break
        pos[b] = candidate
    return pos


def sample_scene(rng: np.random.Generator, settings: RigidSettings = RigidSettings()) -> Scene:
    """A random scene: canonical (floor ``z = 0``, gravity ``−z``), then moved by a random
    rigid motion if ``settings.random_motion``."""
    num = int(rng.integers(settings.min_bodies, settings.max_bodies + 1))
    shape = rng.integers(0, len(SHAPES), num)
    half = rng.uniform(*settings.half_size, (num, 3))
    capsule = shape == SHAPES.index("capsule")
    half[capsule, 1] = half[capsule, 0]                      # radius r on x and y
    half[capsule, 2] += half[capsule, 0]                     # r + a half length of the same range
    mass = np.exp(rng.uniform(*np.log(settings.mass), num))
    pos = _spawn_positions(rng, np.linalg.norm(half, axis=1), settings)
    rot = np.stack([random_rotation(rng) for _ in range(num)])
    scene = Scene(shape=shape, half_extent=half, mass=mass, pos=pos, rot=rot,
                  vel=settings.speed * rng.standard_normal((num, 3)),
                  omega=settings.spin * rng.standard_normal((num, 3)),
                  gravity=np.array([0.0, 0.0, -settings.gravity]),
                  floor_point=np.zeros(3), floor_normal=np.array([0.0, 0.0, 1.0]))
    if settings.random_motion:
        scene = scene.moved(random_rotation(rng), settings.translation_std * rng.standard_normal(3))
    return scene


def _vec(x: np.ndarray | list[float]) -> str:
    return " ".join(repr(float(v)) for v in x)  # repr of a Python float round-trips exactly


def _quat(rot: np.ndarray) -> np.ndarray:
    """MuJoCo quaternion ``(w, x, y, z)`` of a rotation matrix ``[3, 3]``."""
    mujoco = import_mujoco()
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, np.ascontiguousarray(rot).ravel())
    return quat


def _floor_quat(normal: np.ndarray) -> np.ndarray:
    """A quaternion turning ``+z`` into ``normal`` (the plane's spin about it is immaterial)."""
    mujoco = import_mujoco()
    quat = np.zeros(4)
    mujoco.mju_quatZ2Vec(quat, np.asarray(normal, dtype=float))
    return quat


def scene_xml(scene: Scene, settings: RigidSettings = RigidSettings()) -> str:
    """The MJCF model of a scene. Bodies are placed at their origin; the initial state is
    set by :func:`set_state` (so a scene and its moved copy share everything but numbers)."""
    geoms = []
    for b in range(scene.num_bodies):
        half, kind = scene.half_extent[b], SHAPES[scene.shape[b]]
        size = _vec([half[0], half[2] - half[0]]) if kind == "capsule" else _vec(half)  # capsule: r, half length
        geoms.append(f'<body name="b{b}"><freejoint/>'
                     f'<geom type="{kind}" size="{size}" mass="{_vec([scene.mass[b]])}"/></body>')
    return (f'<mujoco><option timestep="{settings.timestep!r}" gravity="{_vec(scene.gravity)}" '
            f'cone="{settings.cone}"/>'
            f'<default><geom friction="{settings.friction!r} 0.005 0.0001"/></default>'
            f'<worldbody><geom name="floor" type="plane" size="0 0 1" '
            f'pos="{_vec(scene.floor_point)}" quat="{_vec(_floor_quat(scene.floor_normal))}"/>'
            + "".join(geoms) + "</worldbody></mujoco>")


def set_state(model, data, scene: Scene) -> None:
    """Write the scene's poses and velocities into MuJoCo's ``qpos``/``qvel`` (free joint:
    ``[pos, quat]`` and ``[linear velocity (world), angular velocity (body frame)]``)."""
    mujoco = import_mujoco()
    for b in range(scene.num_bodies):
        qpos, qvel = model.jnt_qposadr[b], model.jnt_dofadr[b]
        data.qpos[qpos:qpos + 3] = scene.pos[b]
        data.qpos[qpos + 3:qpos + 7] = _quat(scene.rot[b])
        data.qvel[qvel:qvel + 3] = scene.vel[b]
        data.qvel[qvel + 3:qvel + 6] = scene.rot[b].T @ scene.omega[b]
    mujoco.mj_forward(model, data)


def simulate_scene(scene: Scene, steps: list[int] | np.ndarray,
                   settings: RigidSettings = RigidSettings()) -> np.ndarray:
    """World-frame keypoints ``[len(steps), B·4, 3]`` (float64) after each number of
    timesteps in ``steps`` (sorted, ≥ 0)."""
    mujoco = import_mujoco()
    model = mujoco.MjModel.from_xml_string(scene_xml(scene, settings))
    data = mujoco.MjData(model)
    set_state(model, data, scene)
    local = scene.local_keypoints()
    out, done = [], 0
    for target in steps:
        for _ in range(int(target) - done):
            mujoco.mj_step(model, data)
        done = int(target)
        rot = data.xmat[1:].reshape(-1, 3, 3)                # body 0 is the world
        world = np.einsum("bkj,bij->bki", local, rot) + data.xpos[1:, None]
        out.append(world.reshape(-1, 3))
    return np.stack(out)


def scene_sample(seed: np.random.SeedSequence | int, settings: RigidSettings = RigidSettings()
                 ) -> dict[str, np.ndarray]:
    """One padded sample from the scene seeded by ``seed`` (see :func:`make_rigid_dataset`
    for the keys; arrays without the leading sample axis)."""
    rng = np.random.default_rng(seed)
    scene = sample_scene(rng, settings)
    dt, lo = settings.delta_steps, int(np.ceil(settings.t_min / settings.timestep))
    t = int(rng.integers(max(lo, dt), int(settings.t_max / settings.timestep) + 1))
    frames = simulate_scene(scene, [t - dt, t, t + dt], settings)
    k = KEYPOINTS_PER_BODY * scene.num_bodies
    def pad(x, fill=0):
        return np.concatenate([x, np.full((MAX_KEYPOINTS - k, *x.shape[1:]), fill, x.dtype)])

    body = np.repeat(np.arange(scene.num_bodies), KEYPOINTS_PER_BODY)
    return {"keypoints_prev": pad(frames[0]), "keypoints": pad(frames[1]), "target": pad(frames[2]),
            "gravity": scene.gravity, "floor_point": scene.floor_point, "floor_normal": scene.floor_normal,
            "body_index": pad(body, -1), "body_type": pad(scene.shape[body], -1),
            "mass": pad(scene.mass[body]), "mask": pad(np.ones(k, dtype=bool), False)}


def _chunk(args: tuple[list[np.random.SeedSequence], RigidSettings]) -> list[dict[str, np.ndarray]]:
    seeds, settings = args
    return [scene_sample(s, settings) for s in seeds]


def simulate_rigid(num_samples: int, *, seed: int = 0, settings: RigidSettings = RigidSettings(),
                   workers: int | None = None, progress: bool = True) -> dict[str, Tensor]:
    """Simulate ``num_samples`` independent scenes (one sample each), uncached.

    Scene ``i`` is seeded by child ``i`` of ``np.random.SeedSequence(seed)``, so the result
    does not depend on ``workers`` (processes; default: all CPUs).
    """
    import_mujoco()
    seeds = np.random.SeedSequence(seed).spawn(num_samples)
    workers = workers or os.cpu_count() or 1
    chunk = max(1, min(64, -(-num_samples // (4 * workers))))
    jobs = [(seeds[i:i + chunk], settings) for i in range(0, num_samples, chunk)]
    workers = min(workers, len(jobs))
    bar = tqdm(total=num_samples, desc="rigid scenes", unit="scene", disable=not progress)
    samples = []
    if workers <= 1:
        parts = map(_chunk, jobs)
    else:
        pool = ProcessPoolExecutor(workers)
        parts = pool.map(_chunk, jobs)
    try:
        for part in parts:
            samples.extend(part)
            bar.update(len(part))
    finally:
        bar.close()
        if workers > 1:
            pool.shutdown()
    return _stack(samples)


def _stack(samples: list[dict[str, np.ndarray]]) -> dict[str, Tensor]:
    out = {}
    for key in samples[0]:
        array = np.stack([s[key] for s in samples])
        tensor = torch.from_numpy(array)
        out[key] = tensor.float() if tensor.is_floating_point() else tensor
    for key in ("body_index", "body_type"):
        out[key] = out[key].long()
    return out


def _cached_size(path: Path, stem: str) -> int | None:
    """The number of scenes in a cache file ``<stem>-n<size>.pt`` (``None``: not one)."""
    size = path.stem[len(stem) + 2:]
    return int(size) if size.isdigit() else None


def make_rigid_dataset(num_samples: int, *, seed: int = 0, settings: RigidSettings = RigidSettings(),
                       cache_dir: str | Path | None = None, workers: int | None = None,
                       progress: bool = True) -> dict[str, Tensor]:
    """``num_samples`` rigid-body samples, simulated or read from the cache.

    Returns (``S = num_samples``, ``K = 24`` keypoints: 6 bodies × 4, padded):

    - ``keypoints_prev``, ``keypoints``, ``target``: ``[S, K, 3]`` float32, the keypoints at
      ``t − Δ``, ``t`` and ``t + Δ`` (world frame, m); padded rows are 0;
    - ``gravity`` ``[S, 3]`` (m/s²), ``floor_point`` ``[S, 3]`` (m), ``floor_normal``
      ``[S, 3]`` (unit, pointing up into the scene);
    - ``body_index`` ``[S, K]`` int64, the body (0..5) each keypoint belongs to, −1 for
      padding; ``body_type`` ``[S, K]`` int64 index into :data:`SHAPES` (−1 padding);
      ``mass`` ``[S, K]`` float32, the mass of the keypoint's body (0 padding);
    - ``mask`` ``[S, K]`` bool, True for real keypoints.

    The cache file is keyed by ``num_samples``, ``seed``, ``settings`` and
    :data:`DATA_VERSION`; ``workers`` and ``progress`` do not change the result. Draw
    the splits with different seeds: with one seed, ``n`` samples are the first ``n`` of
    any larger number, so a request is also served by slicing a larger cached set of the
    same seed and settings (a data sweep simulates its largest size only).
    """
    if not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive number of scenes, got {num_samples!r}")
    key = json.dumps({"seed": seed, "version": DATA_VERSION, **asdict(settings)}, sort_keys=True)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    stem = hashlib.sha1(key.encode()).hexdigest()[:16]
    file = cache / "rigid" / f"{stem}-n{num_samples}.pt"
    if file.is_file():
        return torch.load(file, weights_only=True)
    larger = sorted(n for n in (_cached_size(p, stem) for p in file.parent.glob(f"{stem}-n*.pt"))
                    if n is not None and n > num_samples)
    if larger:  # the first n scenes of a larger set are the n-scene set: slice it
        data = torch.load(file.parent / f"{stem}-n{larger[0]}.pt", weights_only=True)
        return {k: v[:num_samples].clone() for k, v in data.items()}
    out = simulate_rigid(num_samples, seed=seed, settings=settings, workers=workers, progress=progress)
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_suffix(f".tmp{os.getpid()}")
    torch.save(out, tmp)
    os.replace(tmp, file)  # atomic: concurrent writers leave one complete file
    return out


INPUT_KEYS = ("keypoints_prev", "keypoints", "gravity", "floor_point", "floor_normal",
              "body_type", "body_index", "mass", "mask")
"""The model inputs of a sample (every key of :func:`make_rigid_dataset` but ``target``)."""


def rigid_symmetry(group: str = "E3") -> Symmetry:
    """The symmetry of the task: ``group`` (default E(3), reflections included) acting on
    the input dict of :data:`INPUT_KEYS` and on the predicted keypoints ``[B, K, 3]``.

    Keypoints at both times and the floor point are points (rotated and translated), the
    gravity and floor normal are one vector per scene (rotated only), shape type, body
    index and mass are invariant per-keypoint features, and ``mask`` marks the real
    keypoints: centroids and PCA frames are computed over real keypoints of
    ``keypoints_prev`` (the first point field), and padded rows are moved like real ones
    (the models return them unchanged, so they stay consistent).
    """
    fields = create_action(
        "fields", keypoints_prev="points", keypoints="points",
        gravity=create_action("vectors", nodes=False), floor_point=create_action("points", nodes=False),
        floor_normal=create_action("vectors", nodes=False), body_type="nodes", body_index="nodes",
        mass="nodes", mask="mask")
    return Symmetry(group, input=fields, output="points")


def rigid_inputs(data: dict[str, Tensor]) -> dict[str, Tensor]:
    """The model inputs of a dataset dict (its :data:`INPUT_KEYS`, in that order)."""
    missing = [k for k in INPUT_KEYS if k not in data]
    if missing:
        raise KeyError(f"rigid-body data lack {', '.join(missing)}")
    return {k: data[k] for k in INPUT_KEYS}


@register_dataset("rigid")
def rigid_task(train: int = 1024, val: int = 256, test: int = 256, seed: int = 0,
               cache_dir: str | None = None, workers: int | None = None, progress: bool = True) -> Task:
    """Rigid-body scenes as a task: inputs the dict of :data:`INPUT_KEYS` (see
    :func:`make_rigid_dataset` for shapes), target the keypoints at ``t + Δ`` ``[B, 24, 3]``,
    symmetry :func:`rigid_symmetry` (E(3)).

    Splits are independent scene sets seeded ``3·seed``, ``3·seed + 1``, ``3·seed + 2``, so
    the first ``n`` training scenes are the same for every training-set size (nested data
    sweeps), and validation and test scenes never change with ``train``.

    Loss and metric ``mse``: the squared error per coordinate, averaged over the 24
    keypoint slots of a scene. Models return padded slots unchanged and they are 0 in the
    target (or moved alike by an augmentation), so padding adds exactly 0: the value is the
    MSE over real keypoints × the fraction of real slots (0.75 on average: 4.5 bodies of
    6). The factor is the same for every model on a split, so comparisons are exact.
    """
    import torch.nn.functional as F

    sizes = {"train": train, "val": val, "test": test}
    splits = {}
    for offset, (name, size) in enumerate(sizes.items()):
        data = make_rigid_dataset(size, seed=3 * seed + offset, cache_dir=cache_dir, workers=workers,
                                  progress=progress)
        splits[name] = TensorData(rigid_inputs(data), data["target"])
    return Task(splits["train"], splits["val"], splits["test"], rigid_symmetry(), F.mse_loss, mse_metrics,
                "mse", {})
