{{/* Chart name, truncated to 63 characters. */}}
{{- define "alert-manager-agent.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified name: the release name when it already contains the chart name
(`helm install alert-manager-agent ...` gives `alert-manager-agent`), else
RELEASE-CHART.
*/}}
{{- define "alert-manager-agent.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "alert-manager-agent.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select the agent's pods. Never change them between upgrades. */}}
{{- define "alert-manager-agent.selectorLabels" -}}
app.kubernetes.io/name: {{ include "alert-manager-agent.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "alert-manager-agent.labels" -}}
helm.sh/chart: {{ include "alert-manager-agent.chart" . }}
{{ include "alert-manager-agent.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: alert-manager
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "alert-manager-agent.serviceAccountName" -}}
{{- .Values.serviceAccount.name }}
{{- end }}

{{/*
Kubernetes context mode, "auto" or "off". An unquoted `off` in a values file is
YAML 1.1's boolean false, so false means "off" (and true "auto").
*/}}
{{- define "alert-manager-agent.kubernetesContext" -}}
{{- $c := .Values.kubernetes.context | toString | lower }}
{{- if or (eq $c "off") (eq $c "false") }}off{{ else }}auto{{ end }}
{{- end }}

{{/*
The required values, with messages that name the value. `fail`, not
`required`: helm lint only warns about `required`, and a chart that cannot
render without these values must not lint clean.
*/}}
{{- define "alert-manager-agent.validate" -}}
{{- if not .Values.topicArn }}
{{- fail "topicArn is required: the ARN of the SNS topic the agent publishes to, e.g. --set topicArn=arn:aws:sns:us-east-1:123456789012:alerts" }}
{{- end }}
{{- if not .Values.clusterName }}
{{- fail "clusterName is required: the name of this cluster, put into every envelope, e.g. --set clusterName=prod-eu-1" }}
{{- end }}
{{- if and .Values.events.enabled (eq (include "alert-manager-agent.kubernetesContext" .) "off") }}
{{- fail "events.enabled needs the Kubernetes API, but kubernetes.context is off; set kubernetes.context=auto or events.enabled=false" }}
{{- end }}
{{- if and .Values.podIdentity.enabled .Values.irsa.roleArn }}
{{- fail "podIdentity.enabled and irsa.roleArn are both set; choose one (EKS Pod Identity needs no ServiceAccount annotation)" }}
{{- end }}
{{- if and .Values.auth.enabled .Values.auth.existingSecret.name (not .Values.auth.existingSecret.key) }}
{{- fail "auth.existingSecret.key is required with auth.existingSecret.name: the key in that Secret that holds the token" }}
{{- end }}
{{- if and .Values.tls.enabled (not .Values.tls.secretName) (not .Values.tls.certManager.enabled) }}
{{- fail "tls.enabled needs a certificate: set tls.secretName to a kubernetes.io/tls Secret, or tls.certManager.enabled=true with tls.certManager.issuerRef.name" }}
{{- end }}
{{- if and .Values.tls.enabled .Values.tls.certManager.enabled (not .Values.tls.certManager.issuerRef.name) }}
{{- fail "tls.certManager.issuerRef.name is required with tls.certManager.enabled: the cert-manager Issuer or ClusterIssuer that signs the webhook's certificate" }}
{{- end }}
{{- end }}

{{/* The kubernetes.io/tls Secret the webhook's certificate is in. */}}
{{- define "alert-manager-agent.tlsSecretName" -}}
{{- .Values.tls.secretName | default (printf "%s-tls" (include "alert-manager-agent.fullname" .)) -}}
{{- end }}

{{/* http or https: how Alertmanager reaches the webhook. */}}
{{- define "alert-manager-agent.webhookScheme" -}}
{{- ternary "https" "http" .Values.tls.enabled -}}
{{- end }}

{{/* AWS region: aws.region, else the region in the topic ARN (SNS must be called in the topic's region). */}}
{{- define "alert-manager-agent.region" -}}
{{- if .Values.aws.region }}
{{- .Values.aws.region }}
{{- else }}
{{- $parts := splitList ":" .Values.topicArn }}
{{- if ge (len $parts) 4 }}{{ index $parts 3 }}{{ end }}
{{- end }}
{{- end }}

{{/* Name of the Secret that holds the bearer token, and its key. */}}
{{- define "alert-manager-agent.authSecretName" -}}
{{- if .Values.auth.existingSecret.name }}
{{- .Values.auth.existingSecret.name }}
{{- else }}
{{- printf "%s-token" (include "alert-manager-agent.fullname" .) }}
{{- end }}
{{- end }}

{{- define "alert-manager-agent.authSecretKey" -}}
{{- if .Values.auth.existingSecret.name }}
{{- .Values.auth.existingSecret.key }}
{{- else }}token{{ end }}
{{- end }}

{{/*
The generated bearer token: the one already in the cluster when there is one
(so upgrades keep it), else a new random one. `helm template` and
`--dry-run=client` have no cluster, so there it is always new.
*/}}
{{- define "alert-manager-agent.generatedToken" -}}
{{- if not (hasKey .Release "alertManagerAgentToken") }}
{{- $name := include "alert-manager-agent.authSecretName" . }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace $name }}
{{- $token := randAlphaNum 48 }}
{{- if and $existing $existing.data (hasKey $existing.data "token") }}
{{- $token = index $existing.data "token" | b64dec }}
{{- end }}
{{- $_ := set .Release "alertManagerAgentToken" $token }}
{{- end }}
{{- get .Release "alertManagerAgentToken" }}
{{- end }}

{{/* The PromQL label selector for the agent's series. */}}
{{- define "alert-manager-agent.promSelector" -}}
{{- if .Values.prometheusRule.selector }}
{{- .Values.prometheusRule.selector }}
{{- else }}
{{- printf "job=%q,namespace=%q" (include "alert-manager-agent.fullname" .) .Release.Namespace }}
{{- end }}
{{- end }}
