"""Evaluation metrics: ranking, ROUGE (rouge-score), MIA, TOFU/MUSE unlearning evaluators.

    from jaxmethods.eval import rouge_l, full_sort_metrics, ks_forget_quality, evaluate_tofu

Names are imported on first use (rouge-score/nltk and scipy load only when needed).
"""

from jaxmethods._exports import lazy_exports

_EXPORTS = {
    "GIBBERISH_CLASSIFIER": "gibberish",
    "TextClassifier": "gibberish",
    "classifier_prob": "gibberish",
    "gibberish_score": "gibberish",
    "load_text_classifier": "gibberish",
    "sequence_statistics": "likelihood",
    "mia_auc": "mia",
    "min_k_scores": "mia",
    "roc_auc": "mia",
    "MuseEvalSettings": "muse_eval",
    "evaluate_muse": "muse_eval",
    "FullSortData": "ranking",
    "align_full_sort_data": "ranking",
    "build_full_sort_data": "ranking",
    "full_sort_metrics": "ranking",
    "hit_ndcg_at_k": "ranking",
    "MeteorOptions": "generation_metrics",
    "generation_metrics": "generation_metrics",
    "fid_from_features": "image_metrics",
    "frechet_distance": "image_metrics",
    "ms_ssim": "image_metrics",
    "ssim": "image_metrics",
    "LPIPSScorer": "lpips",
    "MetricModels": "personalization_metrics",
    "PersonalizationReport": "personalization_metrics",
    "load_metric_models": "personalization_metrics",
    "meteor_label": "generation_metrics",
    "contains_match": "qa",
    "exact_match": "qa",
    "f1_score": "qa",
    "mean_and_stderr": "qa",
    "normalize_answer": "qa",
    "qa_scores": "qa",
    "source_breakdown": "qa",
    "RougeScore": "rouge",
    "rouge1": "rouge",
    "rouge_l": "rouge",
    "rouge_l_batch": "rouge",
    "rouge_tokenize": "rouge",
    "TofuEvalSettings": "tofu_eval",
    "evaluate_tofu": "tofu_eval",
    "answer_probability": "unlearning",
    "extraction_strength": "unlearning",
    "ks_forget_quality": "unlearning",
    "model_utility": "unlearning",
    "normalized_answer_probability": "unlearning",
    "privleak": "unlearning",
    "truth_ratio": "unlearning",
    "truth_ratio_closer_to_1": "unlearning",
    "truth_ratio_true_better": "unlearning",
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
