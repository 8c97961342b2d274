{{/* Names and labels shared by every object of the release. */}}
{{- define "moorage.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "moorage.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "moorage.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "moorage.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "moorage.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "moorage.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "controller"). */}}
{{- define "moorage.selector" -}}
app.kubernetes.io/name: {{ include "moorage.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "moorage.serviceAccount" -}}
{{- default (include "moorage.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "moorage.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "moorage.secretName" -}}
{{- default (include "moorage.fullname" .) .Values.secrets.existingSecret -}}
{{- end -}}

{{- define "moorage.databaseSecret" -}}
{{- if .Values.database.existingSecret -}}
{{- .Values.database.existingSecret -}}
{{- else -}}
{{- printf "%s-database" (include "moorage.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* Fails with the names of the values an install cannot do without. */}}
{{- define "moorage.required" -}}
{{- if not (or .Values.database.url .Values.database.existingSecret) -}}
{{- fail "database.url (postgresql://…) or database.existingSecret is required: Moorage keeps its state in an external PostgreSQL shared by every replica" -}}
{{- end -}}
{{- if not .Values.slugStore.url -}}
{{- fail "slugStore.url (s3://bucket/prefix) is required: app pods fetch their slugs from S3-compatible storage" -}}
{{- end -}}
{{- end -}}

{{/* The pod security context every Moorage pod runs with (the image's user). */}}
{{- define "moorage.podSecurity" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  fsGroup: 10001
  seccompProfile:
    type: RuntimeDefault
{{- end -}}

{{- define "moorage.containerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: ["ALL"]
{{- end -}}

{{/* MOORAGE_* settings every component reads (docs/settings.md). */}}
{{- define "moorage.env" -}}
- name: MOORAGE_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "moorage.databaseSecret" . }}
      key: {{ .Values.database.existingSecretKey }}
- name: MOORAGE_BROKER_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "moorage.secretName" . }}
      key: {{ .Values.secrets.brokerPasswordKey }}
- name: MOORAGE_BROKER_USERNAME
  value: {{ .Values.broker.username | quote }}
- name: MOORAGE_ENCRYPTION_KEY_FILE
  value: /run/moorage/secret.key
- name: MOORAGE_DATA_DIR
  value: /var/lib/moorage
- name: MOORAGE_LOG_LEVEL
  value: {{ .Values.platform.logLevel | quote }}
- name: MOORAGE_PLATFORM_SLUG_STORE_URL
  value: {{ .Values.slugStore.url | quote }}
- name: MOORAGE_AWS_REGION
  value: {{ .Values.slugStore.region | quote }}
{{- with .Values.slugStore.endpoint }}
- name: MOORAGE_AWS_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
{{- range $name, $value := .Values.platform.extraEnv }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end -}}

{{- define "moorage.envFrom" -}}
{{- with .Values.slugStore.credentialsSecret }}
envFrom:
  - secretRef:
      name: {{ . }}
{{- end }}
{{- end -}}

{{/*
The key file must be 0600 and the process's own (the Encryptor refuses a key others can
read); a Secret volume cannot give that to a non-root user, so it is copied into memory.
*/}}
{{- define "moorage.command" -}}
command: ["/bin/sh", "-c"]
args:
  - install -m 0600 /etc/moorage/keys/encryption-key /run/moorage/secret.key && exec moorage {{ . }}
{{- end -}}

{{- define "moorage.volumeMounts" -}}
volumeMounts:
  - {name: keys, mountPath: /etc/moorage/keys, readOnly: true}
  - {name: run, mountPath: /run/moorage}
  - {name: data, mountPath: /var/lib/moorage}
  - {name: tmp, mountPath: /tmp}
{{- end -}}

{{- define "moorage.volumes" -}}
volumes:
  - name: keys
    secret:
      secretName: {{ include "moorage.secretName" .root }}
      defaultMode: 288  # 0440: the owner (root) and fsGroup read it
      items:
        - {key: {{ .root.Values.secrets.encryptionKeyKey }}, path: encryption-key}
  - name: run
    emptyDir: {medium: Memory, sizeLimit: 1Mi}
  - name: data
    emptyDir:
      {{- with .sizeLimit }}
      sizeLimit: {{ . }}
      {{- end }}
  - name: tmp
    emptyDir: {}
{{- end -}}
