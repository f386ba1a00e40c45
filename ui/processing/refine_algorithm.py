"""Processing algorithm ``map_refiner:refine``: a raster in, a refined class map out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputRasterLayer,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterField,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorLayer,
    QgsRasterLayer,
)

from ...engine.errors import MapRefinerError
from ...engine.limits import detail_unsuited
from ...engine.refine.registration import MAX_SEARCH_M, SEARCH_M
from ...engine.vocabulary import (
    DEVICES,
    PRECISIONS,
    VALUE_MAP_EXAMPLE,
    parse_bands,
    parse_raster_value_map,
)
from ..jobs.fetch_job import is_online
from ..layers import coarse_layer_name, refined_layer_name
from ..sources import ground_pixel_size, image_path, layer_file, layer_in_file, raster_path
from .common import (
    INPUT_RESOLUTION,
    MapRefinerAlgorithm,
    advanced,
    call_engine,
    input_resolution_parameter,
    model_parameters,
    optional_number,
    read_model_parameters,
    with_help,
)
from .online_input import FETCH_SHARE, fetch_image, model_resolution, plan_fetch
from .styling import style_on_load

HELP = (
    "Classifies a raster with a coarse CNN and refines the class map with an RNN that "
    "iteratively sharpens boundaries, after Maggiori et al. (2017), “Recurrent neural "
    "networks to correct satellite image classification maps”, IEEE TGRS. The input is "
    "resampled to the model's ground resolution and the result back to the input grid.\n\n"
    "The output is a single-band GeoTIFF (0, 1, … = the model's classes, 255 = no data) "
    "with a colour table and class names.\n\n"
    "With an existing class map (another tool's classification or a rasterized OSM "
    "layer) the RNN starts from that map instead of the coarse CNN and moves its "
    "outlines onto the image's edges; without a model file it uses the bundled snap "
    "model, trained for this.\n\n"
    "The input may be an online layer (XYZ tiles, WMS or WMTS): then set “Area to fetch”. "
    "That area's imagery is fetched at the model's resolution (for XYZ and WMTS the "
    "coarsest zoom or tile matrix at least as fine as the model) into "
    "<layer>_<8 hex>.tif beside the output (in the Processing temp folder for a "
    "temporary output), which a later run on the same area reuses; the log says how "
    "many tiles and MB were fetched. At most 2000 tiles: a larger area is refused before "
    "any request.\n\n"
    "Refining the tiles of one survey one by one (e.g. in batch mode)? Without a model "
    "file each tile is judged alone and neighbouring tiles can be read two ways; make one "
    "model for all of them first with “Survey model: read every tile alike” and give it "
    "as the model file."
)


class RefineAlgorithm(MapRefinerAlgorithm):
    NAME = "refine"
    TITLE = "Refine classification map"
    HELP = HELP
    INPUT, MODEL, ITERATIONS, DEVICE, PRECISION, OUTPUT, SCORES, COARSE = (
        "INPUT",
        "MODEL",
        "ITERATIONS",
        "DEVICE",
        "PRECISION",
        "OUTPUT",
        "SCORES",
        "COARSE",
    )
    PRIOR, PRIOR_VALUE_MAP, PRIOR_STRENGTH = "PRIOR", "PRIOR_VALUE_MAP", "PRIOR_STRENGTH"
    PRIOR_SEARCH = "PRIOR_SEARCH_M"
    PRIOR_EDGES = "PRIOR_EDGE_CHECK"
    PRIOR_VECTOR, PRIOR_CLASS_FIELD = "PRIOR_VECTOR", "PRIOR_CLASS_FIELD"
    EXTENT, FETCHED = "EXTENT", "FETCHED"
    DETAIL_ITERATIONS, DETAIL_RESOLUTION = "DETAIL_ITERATIONS", "DETAIL_RESOLUTION"
    MATCH_COLOURS = "MATCH_COLOURS"
    EXTENT_LABEL = "Area to fetch (XYZ, WMS or WMTS input only)"

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        self.addParameter(
            with_help(
                QgsProcessingParameterRasterLayer(self.INPUT, "Input raster"),
                "The image to classify: a raster file (e.g. RGB GeoTIFF), or an XYZ, WMS or "
                "WMTS layer, whose imagery over “Area to fetch” is fetched first.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterExtent(self.EXTENT, self.EXTENT_LABEL, optional=True),
                "Needed when the input is an online layer (XYZ, WMS or WMTS): the area to "
                "fetch and refine, e.g. the map canvas extent or a drawn rectangle. "
                "Ignored for a raster file.",
            )
        )
        for param in model_parameters(
            "Model file (empty: bundled default)",
            "A .safetensors model saved by Map Refiner; empty: the bundled model chosen below.",
        ):
            self.addParameter(param)
        self.addParameter(
            with_help(
                QgsProcessingParameterNumber(
                    self.ITERATIONS,
                    "RNN iterations (empty: the model's default)",
                    QgsProcessingParameterNumber.Type.Integer,
                    optional=True,
                    minValue=0,
                    maxValue=100,
                ),
                "0 gives the coarse CNN map; more iterations refine boundaries further.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterEnum(
                    self.DEVICE, "Device", options=list(DEVICES), defaultValue=0
                ),
                "auto takes a CUDA GPU when torch can use one, else the CPU.",
            )
        )
        precision = with_help(
            QgsProcessingParameterEnum(
                self.PRECISION, "Precision", options=list(PRECISIONS), defaultValue=0
            ),
            "auto: bf16 mixed precision on a CUDA GPU that supports it (class maps within "
            "0.1 IoU points of fp32), fp32 on the CPU, where bf16 is slower.",
        )
        self.addParameter(advanced(precision))
        detail = with_help(
            QgsProcessingParameterNumber(
                self.DETAIL_ITERATIONS,
                "Fine-grid iterations (outline detail; -1: the model's own; 0: none)",
                QgsProcessingParameterNumber.Type.Integer,
                defaultValue=-1,
                minValue=-1,
                maxValue=50,
            ),
            "For imagery at least 2x finer than the model's grid (drone, 0.3 m aerial): "
            "after the iterations, this many more RNN iterations on a finer grid (the "
            "image's own pixels, at most 4x finer than the model's) draw the outlines at "
            "the image's detail; 1 or 2 are usually best, and it takes longer. Not for "
            "imagery less than 2x finer than the model's grid, where it loses accuracy (the "
            "log warns); refused for imagery not finer than it. -1 (the default): the "
            "model's own, 2 with the bundled model (its detail RNN was trained for that "
            "grid) on imagery at least 1.8x finer than its grid, none otherwise. As "
            "map-refiner refine --detail-iterations.",
        )
        self.addParameter(advanced(detail))
        match = with_help(
            QgsProcessingParameterBoolean(
                self.MATCH_COLOURS,
                "Match the colours of imagery unlike the model's training imagery",
                defaultValue=True,
            ),
            "The bundled models read an image that looks like none of their training "
            "imagery (another sensor, haze, a colour cast, an exposure) with each band "
            "stretched onto the training imagery's colours; the log says when and how. "
            "Untick to read the image as it is (false-colour or very high resolution "
            "imagery whose own colours are the cue can read better so). As map-refiner "
            "refine --no-colour-match.",
        )
        self.addParameter(advanced(match))
        grid = with_help(
            QgsProcessingParameterNumber(
                self.DETAIL_RESOLUTION,
                "Fine grid's pixel size, metres (empty: the image's, at most 4x finer than "
                "the model's)",
                QgsProcessingParameterNumber.Type.Double,
                optional=True,
                minValue=0.0,
            ),
            "The grid the fine-grid iterations run on. Empty: the image's own pixels, but "
            "at most 4x finer than the model's grid (finer bought nothing where measured, "
            "at 4x the pixels); a coarser grid runs faster. Never finer than the image's "
            "own pixels; refused unless finer than the model's grid. Only with fine-grid "
            "iterations. As map-refiner refine --detail-resolution.",
        )
        self.addParameter(advanced(grid))
        self.addParameter(input_resolution_parameter())
        self.addParameter(
            with_help(
                QgsProcessingParameterRasterLayer(
                    self.PRIOR, "Existing class map to snap to the image", optional=True
                ),
                "Optional: a class raster (any grid and CRS) the RNN starts from instead of "
                "the coarse CNN, e.g. another tool's classification or rasterized OSM. "
                "Where it has no data the CNN's own map is used.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterVectorLayer(
                    self.PRIOR_VECTOR,
                    "Existing polygon map to snap (instead of a class map)",
                    [QgsProcessing.SourceType.TypeVectorPolygon],
                    optional=True,
                ),
                "Optional: polygons you already have (OSM buildings, a cadastre) the RNN "
                "starts from; what no polygon covers is background.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterField(
                    self.PRIOR_CLASS_FIELD,
                    "Its class field",
                    parentLayerParameterName=self.PRIOR_VECTOR,
                    optional=True,
                ),
                "The model's class names; empty: every polygon is a building.",
            )
        )
        prior_map = with_help(
            QgsProcessingParameterString(
                self.PRIOR_VALUE_MAP, "Existing map's value map (value:class, …)", optional=True
            ),
            f"e.g. {VALUE_MAP_EXAMPLE} for a 0/255 building mask; empty: its values are "
            "the model's class indices.",
        )
        strength = with_help(
            QgsProcessingParameterNumber(
                self.PRIOR_STRENGTH,
                "Existing map's strength (empty: calibrated on the image)",
                QgsProcessingParameterNumber.Type.Double,
                optional=True,
                minValue=0.0,
                maxValue=100.0,
            ),
            "A fixed logit for the existing map's class; empty: each class starts from the "
            "CNN's own mean heat for that class on this image.",
        )
        search = with_help(
            QgsProcessingParameterNumber(
                self.PRIOR_SEARCH,
                "Look for the existing map's offset up to (m)",
                QgsProcessingParameterNumber.Type.Double,
                defaultValue=SEARCH_M,
                minValue=0.1,
                maxValue=MAX_SEARCH_M,
            ),
            "How far, on each axis, the shift that lays the existing map best over the "
            "image is looked for. When the log says its best fit lies at the edge of the "
            "search, the map may be further off: raise it. As map-refiner refine "
            "--prior-search.",
        )
        edges = with_help(
            QgsProcessingParameterBoolean(
                self.PRIOR_EDGES,
                "Leave the existing map in place when the image's edges contradict its move",
                defaultValue=True,
            ),
            "A move that lays the existing map's outlines on weaker edges of the image than "
            "where they are drawn is undone (the model may misread the imagery, e.g. "
            "false-colour infrared, bands in another order, haze or a colour cast); then, "
            "and where the image's edges "
            "follow the existing map's outlines better than the model's own map (the model "
            "cannot place it, or would reshape it onto weaker edges), the existing map is "
            "kept as drawn (the model only fills what it leaves open). Untick to make the "
            "model's move and "
            "reshaping anyway (as "
            "map-refiner refine --no-prior-edge-check).",
        )
        for param in (prior_map, strength, search, edges):
            self.addParameter(advanced(param))
        self.addParameter(
            with_help(
                QgsProcessingParameterRasterDestination(self.OUTPUT, "Refined class map"),
                "A GeoTIFF with one class index per pixel.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterRasterDestination(
                    self.SCORES, "Per-class probabilities", optional=True, createByDefault=False
                ),
                "Optional float32 GeoTIFF, one band per class.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterRasterDestination(
                    self.COARSE, "Coarse CNN class map", optional=True, createByDefault=False
                ),
                "Optional: the map before any RNN iteration, to compare with the refined one.",
            )
        )
        self.addOutput(
            QgsProcessingOutputRasterLayer(
                self.FETCHED, "Fetched image (online input only): the GeoTIFF refined"
            )
        )

    def processAlgorithm(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,  # noqa: N802
        feedback: QgsProcessingFeedback,
    ) -> dict[str, Any]:
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        choice = read_model_parameters(self, parameters, context)
        iterations = optional_number(self, parameters, self.ITERATIONS, context, integer=True)
        device = DEVICES[self.parameterAsEnum(parameters, self.DEVICE, context)]
        precision = PRECISIONS[self.parameterAsEnum(parameters, self.PRECISION, context)]
        detail_n = self.parameterAsInt(parameters, self.DETAIL_ITERATIONS, context)
        detail = None if detail_n < 0 else detail_n
        detail_m = optional_number(self, parameters, self.DETAIL_RESOLUTION, context)
        if detail_m is not None and detail == 0:
            feedback.pushWarning(
                "The fine grid's pixel size is ignored: there are no fine-grid iterations."
            )
            detail_m = None
        out = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        scores = self.parameterAsOutputLayer(parameters, self.SCORES, context)
        coarse = self.parameterAsOutputLayer(parameters, self.COARSE, context)
        prior_layer = self.parameterAsRasterLayer(parameters, self.PRIOR, context)
        prior_vector = self.parameterAsVectorLayer(parameters, self.PRIOR_VECTOR, context)
        prior_fields = self.parameterAsFields(parameters, self.PRIOR_CLASS_FIELD, context)
        if prior_layer is not None and prior_vector is not None:
            raise QgsProcessingException(
                "Give one existing map to start from: a class map or a polygon layer, not both."
            )
        prior_map = self.parameterAsString(parameters, self.PRIOR_VALUE_MAP, context)
        strength = optional_number(self, parameters, self.PRIOR_STRENGTH, context)
        with_prior = prior_layer is not None or prior_vector is not None
        image, share, name = None, 1.0, layer.name() if layer is not None else ""
        if is_online(layer):  # fetched first; the fetch never takes an output's name
            fetch = plan_fetch(
                layer,
                self.parameterAsExtent(parameters, self.EXTENT, context),
                self.parameterAsExtentCrs(parameters, self.EXTENT, context),
                model_resolution(Path(choice.path) if choice.path else None, with_prior),
                Path(out),
                frozenset(Path(p) for p in (out, scores, coarse) if p),
                self.EXTENT_LABEL,
            )
            image, share, name = fetch_image(fetch, feedback), 1.0 - FETCH_SHARE, fetch.layer_name
        elif parameters.get(self.EXTENT) is not None:
            feedback.pushInfo("“Area to fetch” is ignored: the input is a raster file.")
        if detail and layer is not None and not is_online(layer):
            warn_unsuited_detail(layer, choice.path, with_prior, feedback)

        match_colours = self.parameterAsBool(parameters, self.MATCH_COLOURS, context)
        resolution = optional_number(self, parameters, INPUT_RESOLUTION, context)

        def job(progress, is_cancelled):  # noqa: ANN001, ANN202
            from ...engine.refine.pipeline import RefineParams, refine_raster

            params = RefineParams(
                image=image or image_path(layer),
                out=Path(out),
                model_path=Path(choice.path) if choice.path else None,
                iterations=iterations,
                bands=parse_bands(choice.bands),  # a bad list: the engine's one-line error
                device=device,
                precision=precision,
                scores=Path(scores) if scores else None,
                coarse=Path(coarse) if coarse else None,
                overwrite=True,
                prior=raster_path(prior_layer)
                if prior_layer is not None
                else (layer_file(prior_vector) if prior_vector is not None else None),
                prior_value_map=parse_raster_value_map(prior_map, "The value map"),
                prior_class_field=prior_fields[0] if prior_fields else None,
                prior_layer=layer_in_file(prior_vector) if prior_vector is not None else None,
                prior_strength=strength,
                prior_search_m=self.parameterAsDouble(parameters, self.PRIOR_SEARCH, context),
                prior_edges=self.parameterAsBool(parameters, self.PRIOR_EDGES, context),
                detail_iterations=detail,
                detail_resolution_m=detail_m,
                choose_model=choice.for_image,
                match_colours=match_colours,
                input_resolution_m=None if image else resolution,  # a fetch has its own
            )
            return refine_raster(
                params,
                progress=lambda f: progress(1.0 - share + share * f),
                is_cancelled=is_cancelled,
            )

        result = call_engine(feedback, job)
        feedback.pushInfo(
            f"{result.tiles} tiles, {result.iterations} iterations on "
            f"{result.device} in {result.seconds:.1f} s: {', '.join(result.class_names)}"
        )
        if result.model_note:
            feedback.pushInfo(f"Model: {result.model_note}.")
        if result.colour_note:
            feedback.pushInfo(f"Note: {result.colour_note}.")
        if result.scale_note:
            feedback.pushWarning(f"Note: {result.scale_note}.")
        if result.corrections_note:
            feedback.pushWarning(f"Note: {result.corrections_note}.")
        if result.prior_note:
            say = feedback.pushWarning if result.prior_misread else feedback.pushInfo
            say(f"Existing map {result.prior_note}.")
        style_on_load(
            context,
            out,
            refined_layer_name(name, result.iterations),
            result.class_names,
            result.colours,
            above=layer.source() if layer is not None else "",  # the map above its image
        )
        if coarse:
            style_on_load(
                context, coarse, coarse_layer_name(name), result.class_names, result.colours
            )
        outputs = {self.OUTPUT: out, self.SCORES: scores or None, self.COARSE: coarse or None}
        return outputs if image is None else {**outputs, self.FETCHED: str(image)}


def warn_unsuited_detail(
    layer: QgsRasterLayer, model: str, with_prior: bool, feedback: QgsProcessingFeedback
) -> None:
    """A warning in the log where fine-grid iterations lose accuracy (imagery finer than
    the model's grid, but not 2x); the engine itself refuses imagery not finer at all."""
    try:
        reason = detail_unsuited(
            ground_pixel_size(layer), model_resolution(Path(model) if model else None, with_prior)
        )
    except (MapRefinerError, QgsProcessingException):
        return  # the refine says what is wrong with the raster or the model
    if reason is not None:
        feedback.pushWarning(f"Fine-grid iterations: {reason}.")
