"""Spatial pruning sites: the places of a detector where a keep ratio decides how many
voxels or BEV pixels go on, and which the joint allocation chooses after training.

Each registered finder (``SITE_FINDERS``) returns the sites of one kind of spatial module:

- ``ada3d``: every location of an :class:`Ada3DSparseEncoder`'s ``keep_ratios`` ('input',
  'stageN', 'bev'): the fraction of non-empty BEV columns / pixels the importance predictor
  keeps there; a location the encoder can drop at but does not (absent from its
  ``keep_ratios``: keep 1.0) is a site when named (``find_sites(names=...)``), e.g.
  ``middle_encoder.input`` on a model trained to drop after its stages only;
- ``spss``: every stage of an :class:`SPSSSparseEncoder` that was built with pruning convs:
  the fraction of voxels its SPSS convs keep (1 - ``prune_ratio``).

A site is named ``<module>.<location>`` (``middle_encoder.bev``, ``middle_encoder.stage2``).
"""
import contextlib
from typing import Callable, Dict, Iterable, List, Optional, Sequence

from torch import nn

from ..errors import UserError
from ..registry import SITE_FINDERS, build_piece
from ..spatial.ada3d_encoder import Ada3DSparseEncoder
from ..spatial.spss_conv import SPSSSparseConv3d, SPSSSubMConv3d
from ..spatial.spss_encoder import SPSSSparseEncoder


class SpatialSite:
    """One keep ratio of a model, read and written in place.

    Args:
        name (str): ``<module>.<location>``.
        module (nn.Module): the module that holds the ratio.
    """

    def __init__(self, name: str, module: nn.Module):
        self.name = name
        self.module = module

    def get(self) -> float:
        """The keep ratio in force."""
        raise NotImplementedError

    def set(self, keep: float) -> None:
        """Put ``keep`` in force (in (0, 1])."""
        raise NotImplementedError

    def update_config(self, module_cfg: dict, keep: float) -> None:
        """Write ``keep`` into the config dict of the site's module (so that a detector
        built from the config runs with it)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.name!r}, keep={self.get():.3g})'


class Ada3DLocation(SpatialSite):
    """A location of an Ada3D encoder's ``keep_ratios``. A location absent from them when
    the site is made keeps 1.0; setting it to 1.0 again removes it, so the encoder runs as
    before.

    Args:
        name (str): ``<module>.<location>``.
        module (Ada3DSparseEncoder): the encoder.
        location (str): 'input', 'stageN' or 'bev'.
    """

    def __init__(self, name: str, module: nn.Module, location: str):
        super().__init__(name, module)
        self.location = location
        self.absent = location not in module.keep_ratios

    def get(self) -> float:
        return float(self.module.keep_ratios.get(self.location, 1.0))

    def set(self, keep: float) -> None:
        _check_keep(self.name, keep)
        if self.absent and keep == 1.0:
            self.module.keep_ratios.pop(self.location, None)
        else:
            self.module.keep_ratios[self.location] = float(keep)

    def update_config(self, module_cfg: dict, keep: float) -> None:
        ratios = dict(module_cfg.get('keep_ratios') or self.module.keep_ratios)
        if self.location in ratios or keep != 1.0:  # 1.0 where absent: as it is
            ratios[self.location] = float(keep)
        module_cfg['keep_ratios'] = ratios


class SPSSStage(SpatialSite):
    """The pruning convs of one SPSS encoder stage (one keep ratio for all of them).

    Args:
        name (str): ``<module>.stageN``.
        module (SPSSSparseEncoder): the encoder.
        convs (Sequence[nn.Module]): the stage's SPSS convs.
    """

    def __init__(self, name: str, module: nn.Module, convs: Sequence[nn.Module],
                 stage: int):
        super().__init__(name, module)
        self.convs = list(convs)
        self.stage = stage

    def get(self) -> float:
        return 1.0 - float(self.convs[0].prune_ratio)

    def set(self, keep: float) -> None:
        _check_keep(self.name, keep)
        for conv in self.convs:
            conv.prune_ratio = 1.0 - float(keep)

    def update_config(self, module_cfg: dict, keep: float) -> None:
        ratios = module_cfg.get('run_ratios')
        if ratios is None:  # every stage's ratio in force now
            ratios = [self._stage_ratio(i) for i in range(len(self.module.encoder_layers))]
        ratios = list(ratios)
        ratios[self.stage] = 1.0 - float(keep)
        module_cfg['run_ratios'] = ratios

    def _stage_ratio(self, i: int) -> float:
        convs = [c for c in self.module.encoder_layers[i].modules()
                 if isinstance(c, (SPSSSubMConv3d, SPSSSparseConv3d))]
        return float(convs[0].prune_ratio) if convs else 0.0


def _check_keep(name: str, keep: float) -> None:
    if not 0 < keep <= 1:
        raise UserError(f'keep ratio of spatial site {name} must be in (0, 1], got {keep}')


class SiteFinder:
    """Finds the sites of one kind of spatial module (a ``SITE_FINDERS`` piece)."""

    def find(self, model: nn.Module) -> List[SpatialSite]:
        """The sites the model drops at now, in the order it runs them."""
        raise NotImplementedError

    def candidates(self, model: nn.Module) -> List[SpatialSite]:
        """Every site the finder could set (by default the sites it finds)."""
        return self.find(model)


@SITE_FINDERS.register_module(name='ada3d')
class Ada3DSites(SiteFinder):
    """The locations of every Ada3D encoder's ``keep_ratios``; :meth:`candidates` adds
    every other location the encoder can drop at (keep 1.0 until set)."""

    def find(self, model: nn.Module) -> List[SpatialSite]:
        """The locations in force (the encoder's ``keep_ratios``)."""
        return self._sites(model, lambda encoder: encoder.keep_ratios)

    def candidates(self, model: nn.Module) -> List[SpatialSite]:
        """Every location of every Ada3D encoder, in the order it runs them."""
        return self._sites(model, lambda encoder: encoder.locations())

    @staticmethod
    def _sites(model: nn.Module, locations: Callable[[nn.Module], Iterable[str]]):
        return [Ada3DLocation(f'{name}.{loc}', m, loc)
                for name, m in model.named_modules() if isinstance(m, Ada3DSparseEncoder)
                for loc in locations(m)]


@SITE_FINDERS.register_module(name='spss')
class SPSSSites(SiteFinder):
    """The stages of every SPSS encoder that hold pruning convs (a stage built without them
    cannot drop, so :meth:`candidates` are the same sites)."""

    def find(self, model: nn.Module) -> List[SpatialSite]:
        sites = []
        for name, m in model.named_modules():
            if not isinstance(m, SPSSSparseEncoder):
                continue
            for i, stage in enumerate(m.encoder_layers):
                convs = [c for c in stage.modules()
                         if isinstance(c, (SPSSSubMConv3d, SPSSSparseConv3d))]
                if convs:
                    sites.append(SPSSStage(f'{name}.stage{i + 1}', m, convs, i))
        return sites


def find_sites(model: nn.Module, finders: Sequence = ('ada3d', 'spss'),
               names: Optional[Sequence[str]] = None) -> List[SpatialSite]:
    """The spatial sites of ``model`` the ``finders`` (``SITE_FINDERS`` names or configs)
    find, in the order the model runs them: the sites in force, or with ``names`` those named
    among every site the finders could set (each must exist), in the order named.

    Args:
        model (nn.Module): the detector.
        finders (Sequence[str | dict]): site finders. Defaults to ('ada3d', 'spss').
        names (Sequence[str], optional): site names to choose; None: the sites in force.
            Defaults to None.

    Returns:
        list[SpatialSite]: the sites.
    """
    finders = [build_piece(f, SITE_FINDERS, 'spatial site') for f in finders]
    if names is None:
        return [s for f in finders for s in f.find(model)]
    by_name = {s.name: s for f in finders for s in f.candidates(model)}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise UserError(f'unknown spatial site(s) {unknown}; the model has '
                         f'{sorted(by_name) or "none"}')
    return [by_name[n] for n in names]


def keep_ratios(sites: Sequence[SpatialSite]) -> Dict[str, float]:
    """Site name -> keep ratio in force."""
    return {s.name: s.get() for s in sites}


def set_keep_ratios(sites: Sequence[SpatialSite], ratios: Dict[str, float]) -> None:
    """Put ``ratios`` (site name -> keep) in force on the named sites."""
    for s in sites:
        if s.name in ratios:
            s.set(ratios[s.name])


@contextlib.contextmanager
def ratios_in_force(sites: Sequence[SpatialSite], ratios: Optional[Dict[str, float]] = None):
    """Within the block ``ratios`` (site name -> keep; None: as they are) are in force, and
    the sites' ratios are as before after it, however it ends."""
    before = keep_ratios(sites)
    try:
        set_keep_ratios(sites, ratios or {})
        yield
    finally:
        set_keep_ratios(sites, before)


def keep_ratios_into_config(model_cfg: dict, model: nn.Module,
                            ratios: Dict[str, float]) -> None:
    """Write the keep ratios (site name -> keep) into ``model_cfg`` (the config's ``model``
    dict) so that a detector built from it runs with them, e.g. the config of a pruned or
    slimmed checkpoint.

    Args:
        model_cfg (dict): the ``model`` section of the config, or an empty dict to collect
            just the overrides (changed in place).
        model (nn.Module): a detector built from it (its sites tell what to write).
        ratios (dict[str, float]): site name -> keep ratio.
    """
    for site, keep in zip(find_sites(model, names=list(ratios)), ratios.values()):
        module_name = next(n for n, m in model.named_modules() if m is site.module)
        node = model_cfg
        for part in module_name.split('.'):  # made where the dict has none (overrides)
            node = node.setdefault(part, {})
        site.update_config(node, keep)


def checkpoint_keep_ratios(meta: Optional[dict]) -> Dict[str, float]:
    """The keep ratios a joint pruning chose, from a checkpoint's ``meta['dm3d']`` ({} for
    any other checkpoint)."""
    return dict(((meta or {}).get('spatial') or {}).get('keep_ratios') or {})


def apply_checkpoint_keep_ratios(model: nn.Module, meta: Optional[dict]) -> Dict[str, float]:
    """Put in force the keep ratios a pruned checkpoint's ``meta['dm3d']`` carries (a joint
    allocation's choice); returns them ({} when it carries none).

    Args:
        model (nn.Module): the detector the checkpoint was loaded into.
        meta (dict, optional): the checkpoint's ``meta['dm3d']``.
    """
    ratios = checkpoint_keep_ratios(meta)
    if ratios:
        sites = find_sites(model, names=list(ratios))
        set_keep_ratios(sites, ratios)
    return ratios
