"""From a data file to model inputs, in layers that each import only the ones above them in this list.

- `csvfile`: reading CSVs (options, header, rows, chunks), ragged rows, which cells are missing.
- `arrowfile`: reading Parquet and Feather files with pyarrow (schema, first rows as text, batches).
- `frames`: a pandas DataFrame as a source (`dlrun.train(data=frame)`), read as a Parquet file of it would be.
- `files`: which reader a data file gets, by its suffix; where a row is, for messages; writing predictions.
- `kinds`: what each column is (numeric, categorical, date) or why it cannot be used; what a number and a date are.
- `preprocess`: the fitted `Preprocessing` and `Preprocessing.apply`, the one way raw rows become model inputs.
- `fitter`: the columns' plans and the chunk-by-chunk `Fitter` that learns a `Preprocessing`; `Prepared`.
- `split`: the one split rule of the training file's rows, the same read whole or in chunks.
- `cache`: the columnar cache of streamed data (preprocessed rows written once, read on later epochs).
- `stream`: files read in chunks (or from the cache), as `tf.data` pipelines.
- `prepare`: the entry point, `prepare`: one pass over the source's chunks (in memory: one chunk), then
  arrays in memory or a `stream`.
- `datasets`: `Prepared` -> the `tf.data` datasets `model.fit` reads (training only).
"""
