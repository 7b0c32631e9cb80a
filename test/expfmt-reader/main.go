// Reads a Prometheus text exposition on stdin with the Prometheus project's own parser
// (github.com/prometheus/common/expfmt) and prints what it read as JSON, one object per family,
// histograms flattened back into their _bucket/_sum/_count samples. A parse error exits 1 with the
// parser's message. Used by test/exposition-expfmt.test.ts only; never shipped.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

type sample struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels"`
	// As Go formats the float: JSON has no NaN or Inf.
	Value string `json:"value"`
}

type family struct {
	Name    string   `json:"name"`
	Help    string   `json:"help"`
	Type    string   `json:"type"`
	Samples []sample `json:"samples"`
}

func format(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

func labelsOf(m *dto.Metric, extra ...string) map[string]string {
	labels := map[string]string{}
	for _, pair := range m.GetLabel() {
		labels[pair.GetName()] = pair.GetValue()
	}
	for i := 0; i+1 < len(extra); i += 2 {
		labels[extra[i]] = extra[i+1]
	}
	return labels
}

func samplesOf(mf *dto.MetricFamily) []sample {
	var out []sample
	name := mf.GetName()
	for _, m := range mf.GetMetric() {
		switch mf.GetType() {
		case dto.MetricType_COUNTER:
			out = append(out, sample{name, labelsOf(m), format(m.GetCounter().GetValue())})
		case dto.MetricType_GAUGE:
			out = append(out, sample{name, labelsOf(m), format(m.GetGauge().GetValue())})
		case dto.MetricType_UNTYPED:
			out = append(out, sample{name, labelsOf(m), format(m.GetUntyped().GetValue())})
		case dto.MetricType_HISTOGRAM:
			h := m.GetHistogram()
			for _, b := range h.GetBucket() {
				// The parser keeps the +Inf bucket as a bucket like the others.
				le := format(b.GetUpperBound())
				out = append(out, sample{name + "_bucket", labelsOf(m, "le", le), strconv.FormatUint(b.GetCumulativeCount(), 10)})
			}
			out = append(out, sample{name + "_sum", labelsOf(m), format(h.GetSampleSum())})
			out = append(out, sample{name + "_count", labelsOf(m), strconv.FormatUint(h.GetSampleCount(), 10)})
		default:
			fmt.Fprintf(os.Stderr, "family %s: type %s is not written by gpucc\n", name, mf.GetType())
			os.Exit(1)
		}
	}
	return out
}

func main() {
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	out := []family{}
	for _, mf := range families {
		out = append(out, family{mf.GetName(), mf.GetHelp(), map[dto.MetricType]string{
			dto.MetricType_COUNTER: "counter", dto.MetricType_GAUGE: "gauge",
			dto.MetricType_HISTOGRAM: "histogram", dto.MetricType_UNTYPED: "untyped",
		}[mf.GetType()], samplesOf(mf)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
