/**
 * `rpc.server.duration` aggregated in the process, handed to the OpenTelemetry SDK at collection
 * time as a `MetricProducer` rather than recorded point by point through the API: the SDK's
 * `Histogram.record` hashes the whole attribute set on every point (about 1.3 us for the six
 * attributes of a call, `bench/usage.ts`), more than the rest of the metrics together on a no-op
 * call over a pipe. Here a call finds its series once and adds to it: a bucket search and four
 * additions. Exact: the same count, sum, min, max and bucket counts the SDK's explicit-bucket
 * aggregation keeps, cumulative from the producer's creation.
 *
 * Typed structurally, without the SDK as a dependency: `collect` returns what a reader's
 * `MetricProducer` returns (`CollectionResult`).
 */
import { type Attributes, type HrTime, ValueType } from "@opentelemetry/api";
import { DURATION_BOUNDARIES_S } from "../protocol/telemetry.js";

/** One series' histogram: what an explicit-bucket aggregation keeps. */
export class SeriesHistogram {
  count = 0;
  sum = 0;
  min = Number.POSITIVE_INFINITY;
  max = Number.NEGATIVE_INFINITY;
  /** counts[i]: values in (boundaries[i-1], boundaries[i]]; the last, above every boundary. */
  readonly counts: Float64Array;

  constructor(
    readonly attributes: Attributes,
    private readonly boundaries: readonly number[],
  ) {
    this.counts = new Float64Array(boundaries.length + 1);
  }

  record(value: number): void {
    this.count += 1;
    this.sum += value;
    if (value < this.min) this.min = value;
    if (value > this.max) this.max = value;
    const b = this.boundaries;
    let lo = 0;
    let hi = b.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (b[mid]! < value) lo = mid + 1;
      else hi = mid;
    }
    this.counts[lo]! += 1;
  }
}

/** The part of the SDK's `CollectionResult` a producer fills in. */
export interface ProducedMetrics {
  readonly resourceMetrics: {
    /** Never read: the reader reports its own resource (an SDK `MetricReader` keeps only the scopes of other producers). */
    readonly resource: never;
    readonly scopeMetrics: {
      readonly scope: { readonly name: string };
      readonly metrics: {
        readonly descriptor: {
          readonly name: string;
          readonly description: string;
          readonly unit: string;
          readonly valueType: ValueType;
        };
        /** The SDK's `AggregationTemporality.CUMULATIVE`. */
        readonly aggregationTemporality: 1;
        /** The SDK's `DataPointType.HISTOGRAM`. */
        readonly dataPointType: 0;
        readonly dataPoints: {
          readonly startTime: HrTime;
          readonly endTime: HrTime;
          readonly attributes: Attributes;
          readonly value: {
            readonly buckets: { readonly boundaries: number[]; readonly counts: number[] };
            readonly sum: number;
            readonly count: number;
            readonly min?: number;
            readonly max?: number;
          };
        }[];
      }[];
    }[];
  };
  readonly errors: unknown[];
}

/** Series past this many are counted in one overflow series (the SDK's default cardinality limit). */
const MAX_SERIES = 2000;

function hrTime(ms: number): HrTime {
  const s = Math.floor(ms / 1000);
  return [s, Math.round((ms - s * 1000) * 1e6)];
}

/** What a `DurationProducer` reports as. */
export interface DurationMetric {
  /** The instrumentation scope (the meter's name). */
  readonly scope: string;
  readonly name: string;
  readonly description: string;
  /** Increasing upper bounds, in seconds. Default: `DURATION_BOUNDARIES_S`. */
  readonly boundaries?: readonly number[];
}

/** An attribute set's identity, independent of key order. */
function seriesKey(attributes: Attributes): string {
  return JSON.stringify(
    Object.keys(attributes)
      .sort()
      .map((k) => [k, attributes[k]]),
  );
}

/**
 * Durations of calls kept by one or more metrics interceptors (`MetricsOptions.durations`), for a
 * reader to collect: `new PeriodicExportingMetricReader({ exporter, metricProducers: [durations] })`.
 */
export class DurationProducer {
  private readonly series = new Map<string, SeriesHistogram>();
  private readonly start = hrTime(Date.now());
  private readonly boundaries: readonly number[];

  constructor(private readonly metric: DurationMetric) {
    const b = metric.boundaries ?? DURATION_BOUNDARIES_S;
    for (let i = 0; i < b.length; i++) {
      if (!Number.isFinite(b[i]) || (i > 0 && !(b[i]! > b[i - 1]!))) {
        throw new RangeError("duration boundaries must be finite and increasing");
      }
    }
    this.boundaries = [...b];
  }

  /** The histogram of the series `attributes` name, made on first use (a call's series is looked up once, then kept). */
  seriesOf(attributes: Attributes): SeriesHistogram {
    let key = seriesKey(attributes);
    let h = this.series.get(key);
    if (h !== undefined) return h;
    if (this.series.size >= MAX_SERIES) {
      key = "";
      attributes = { "otel.metric.overflow": true };
      h = this.series.get(key);
      if (h !== undefined) return h;
    }
    h = new SeriesHistogram(attributes, this.boundaries);
    this.series.set(key, h);
    return h;
  }

  /** What an SDK reader calls at each collection (`MetricProducer.collect`). */
  async collect(): Promise<ProducedMetrics> {
    const end = hrTime(Date.now());
    const dataPoints = [];
    for (const h of this.series.values()) {
      if (h.count === 0) continue;
      dataPoints.push({
        startTime: this.start,
        endTime: end,
        attributes: h.attributes,
        value: {
          buckets: { boundaries: [...this.boundaries], counts: Array.from(h.counts) },
          sum: h.sum,
          count: h.count,
          min: h.min,
          max: h.max,
        },
      });
    }
    const metrics =
      dataPoints.length === 0
        ? []
        : [
            {
              descriptor: {
                name: this.metric.name,
                description: this.metric.description,
                unit: "s",
                valueType: ValueType.DOUBLE,
              },
              aggregationTemporality: 1 as const,
              dataPointType: 0 as const,
              dataPoints,
            },
          ];
    return {
      resourceMetrics: {
        resource: undefined as never,
        scopeMetrics: [{ scope: { name: this.metric.scope }, metrics }],
      },
      errors: [],
    };
  }
}
