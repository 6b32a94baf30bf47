DROP TABLE pipeline_steps;
DROP TABLE pipelines;
